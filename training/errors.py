"""The one error of unusable input data."""

from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used; the message names the column (and row) and the problem."""
