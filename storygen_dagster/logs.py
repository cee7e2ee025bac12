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


class PlainFormatter(logging.Formatter):
    """`warning: <message>`: one line for a person, no timestamp, logger or traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"


def echoed_by_dagster(record: logging.LogRecord) -> bool:
    """True when Dagster is capturing `storygen` records (inside a step) and will take this one:
    its console logger then prints it, with the run and step."""
    for handler in logging.getLogger("storygen").handlers:
        if type(handler).__name__ == "DagsterLogHandler" and handler.filter(record):
            return True
    return False


class ConsoleFilter(logging.Filter):
    """What stderr shows besides the CLI's own lines. Verbose: every record once (Dagster's
    console, at DEBUG with -v, prints the ones it captures). Default: warnings and errors, but
    not a story's errors: the CLI reports each failed story in one line of its own."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose:
            return not echoed_by_dagster(record)
        return not (record.levelno >= logging.ERROR and getattr(record, "story_id", None))


class StorygenHandler(logging.StreamHandler):
    """The stderr handler configure_logging attaches: one at a time, replaced on every call."""


def detach_handlers() -> None:
    """Remove the stderr handlers configure_logging attached (e.g. after a test's CLI run, whose
    stderr is closed)."""
    for logger in (logging.getLogger("storygen"), logging.getLogger()):
        for handler in [h for h in logger.handlers if isinstance(h, StorygenHandler)]:
            logger.removeHandler(handler)


def _not_storygen(record: logging.LogRecord) -> bool:
    return record.name != "storygen" and not record.name.startswith("storygen.")


def configure_logging(
    fmt: str = "text", level: str = "INFO", console_level: str | None = None, *, verbose=True
) -> None:
    """Idempotent: (re)attach one stderr handler to the `storygen` logger tree. `level` decides
    what is emitted (Dagster's managed loggers see it too); `console_level` what stderr shows;
    `verbose=False` (the CLI without -v) prints records as plain `level: message` lines and
    leaves a story's errors to the CLI's per-story error line (see ConsoleFilter)."""
    logger = logging.getLogger("storygen")
    logger.setLevel(level.upper())
    detach_handlers()
    handler = StorygenHandler(sys.stderr)
    handler.setLevel((console_level or level).upper())
    handler.addFilter(ConsoleFilter(verbose))
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=False)
        )
    elif not verbose:
        handler.setFormatter(PlainFormatter())
    else:
        handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    # Other libraries' warnings, as Python's last-resort handler printed them; and with it the
    # root logger has a handler, so a library's module-level logging.warning() no longer calls
    # basicConfig (dagster-postgres' "Retrying failed database creation", when two processes
    # create the instance's tables at once), whose root handler then printed every storygen
    # record after it as "INFO:storygen.db:..." (120 lines in a 2-story demo without -v).
    fallback = StorygenHandler(sys.stderr)
    fallback.setLevel(logging.WARNING)
    fallback.addFilter(_not_storygen)
    fallback.setFormatter(handler.formatter)
    logging.getLogger().addHandler(fallback)
