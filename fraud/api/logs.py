"""Logging: a rejected request is one WARNING line, not an ERROR traceback."""

from __future__ import annotations

import logging

# BentoML logs every failed API call through this logger with a full traceback.
BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"


class OneLineRejections(logging.Filter):
    """Turn BentoML's traceback for a client error (4xx) into one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not _is_client_error(exc):
            return True
        path = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "rejected %s: %s"
        record.args = (path, " ".join(str(exc).split())[:300])
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _is_client_error(exc: BaseException) -> bool:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return True
    code = getattr(getattr(exc, "error_code", None), "value", None)
    return isinstance(code, int) and 400 <= code < 500


def install() -> None:
    """Attach the filter once (idempotent)."""
    logger = logging.getLogger(BENTOML_HTTP_LOGGER)
    if not any(isinstance(f, OneLineRejections) for f in logger.filters):
        logger.addFilter(OneLineRejections())
