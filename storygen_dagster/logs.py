"""Structured logging: key=value text by default, JSON lines with STORYGEN_LOG_FORMAT=json."""

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

CONTEXT_FIELDS = ("story_id", "scene_id", "operation", "rows", "ms", "asset", "provider", "error")


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        message = record.getMessage()
        pairs = [
            f"{k}={getattr(record, k)}"
            for k in CONTEXT_FIELDS
            if hasattr(record, k) and f"{k}=" not in message
        ]
        return f"{base} {' '.join(pairs)}" if pairs else base


def configure_logging(
    fmt: str = "text", level: str = "INFO", console_level: str | None = None
) -> None:
    """Idempotent: (re)attach one stderr handler to the `storygen` logger tree. `level` decides
    what is emitted (Dagster's managed loggers see it too); `console_level` what stderr shows."""
    logger = logging.getLogger("storygen")
    logger.setLevel(level.upper())
    for handler in list(logger.handlers):
        if getattr(handler, "_storygen", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._storygen = True  # type: ignore[attr-defined]
    handler.setLevel((console_level or level).upper())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=False)
        )
    else:
        handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
