"""Sticky A/B assignment: a stable hash of (salt, user_id) into buckets."""

from __future__ import annotations

import hashlib

from fraud.schema import Arm

BUCKETS = 10_000


def bucket(user_id: str, salt: str) -> int:
    """The user's bucket in [0, BUCKETS): SHA-256, so identical on every process and machine."""
    digest = hashlib.sha256(f"{salt}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(user_id: str, salt: str, challenger_share: float) -> Arm:
    """model_b when the user's bucket falls under the challenger's share, else model_a.

    Buckets below `share * BUCKETS` go to the challenger, so raising the share only moves
    users from A to B, never back.
    """
    return "model_b" if bucket(user_id, salt) < round(challenger_share * BUCKETS) else "model_a"
