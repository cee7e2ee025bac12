"""What `storygen demo|request|run` print for people: a line per story stage as its run stores
the materialization (stderr), one error line per failed story (stderr), then a summary table
and totals (stdout). Plain lines everywhere (colour only on a terminal, no cursor movement);
error text is redacted of the configured API keys."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import click
import dagster as dg
import sqlalchemy as sa

from storygen_dagster.defs.story.failures import parse_story_failed

log = logging.getLogger("storygen.console")

_BEARER = re.compile(r"(?i)\b(bearer\s+|api[_-]?key[=:]\s*)[^\s\"',;]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
AWAITING = "awaiting_review"  # held by the review gate: not a failure


def redactor(settings) -> Callable[[str], str]:
    """A function that removes the configured provider keys (and any bearer token) from text."""
    names = ("llm_api_key", "image_api_key", "moderation_api_key", "vision_api_key")
    values = {s.get_secret_value() for n in names if (s := getattr(settings, n, None)) is not None}
    secrets = sorted((v for v in values if len(v) >= 4), key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return _BEARER.sub(lambda m: m.group(1) + "***", text)

    return redact


def one_line(text: str, limit: int = 400) -> str:
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_path(uri: str | float | None) -> str:
    """A book's location as a person types it: relative to the working directory when inside.
    A missing file is "-" (pandas gives NaN for a column of a frame whose values are all null)."""
    if not isinstance(uri, str) or not uri:
        return "-"
    try:
        return str(Path(uri).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return uri


def book_files(row) -> list[str]:
    """The story's HTML book, print PDF and EPUB as a person types their paths."""
    return [shown_path(row.get(k)) for k in ("book", "pdf", "epub")]


def spend_by_story(engine: sa.Engine, story_ids: list[str]) -> dict[str, float]:
    """USD in the provider_calls ledger per story (every call recorded for it, cached or not)."""
    from storygen_dagster.storage.dblog import db_op
    from storygen_dagster.storage.tables import provider_calls as calls

    query = (
        sa.select(calls.c.story_id, sa.func.coalesce(sa.func.sum(calls.c.cost_usd), 0))
        .where(calls.c.story_id.in_(story_ids))
        .group_by(calls.c.story_id)
    )
    with db_op("spend_by_story") as op, engine.connect() as conn:
        rows = conn.execute(query).all()
        op.rows = len(rows)
    return {str(sid): float(cast(float, total)) for sid, total in rows}


def _meta(metadata, key: str, default=None):
    value = metadata.get(key)
    return default if value is None else getattr(value, "value", value)


class Console:
    """Receives every event of the runs (`on_event`, called by the instance as it stores them)
    and turns a story's materializations and failed checks into one line each."""

    def __init__(self, story_ids: Iterable[str], stages: int, redact: Callable[[str], str]):
        self.ids = list(dict.fromkeys(story_ids))
        self.width = max((len(s) for s in self.ids), default=8)
        self.stages = stages
        self.redact = redact
        self.done: dict[str, list[str]] = defaultdict(list)
        self.cost: dict[str, float] = defaultdict(float)
        self.reported: set[str] = set()
        self.run_errors: list[str] = []
        self.started = time.monotonic()
        self._lock = threading.Lock()
        # Decided now: inside a run Dagster captures the process's output (stderr is then no
        # terminal), so colour is chosen from the terminal the command started on.
        self.color = sys.stderr.isatty()
        encoding = getattr(sys.stderr, "encoding", None) or "ascii"
        try:
            "✓✗".encode(encoding)
            self.ok, self.bad = "✓", "✗"
        except (LookupError, UnicodeEncodeError):
            self.ok, self.bad = "ok", "x"

    def _line(self, sid: str, mark: str, color: str, text: str) -> None:
        line = f"{sid:<{self.width}}  {click.style(mark, fg=color)} {text}"
        click.echo(line, err=True, color=self.color)

    def start(self) -> None:
        n = len(self.ids)
        noun = "story" if n == 1 else "stories"
        click.echo(f"Generating {n} {noun}, {self.stages} stages each", err=True)

    def on_event(self, entry: dg.EventLogEntry) -> None:
        try:
            with self._lock:
                self._handle(entry)
        except Exception:  # a rendering problem must never fail a run
            log.debug("console could not render an event", exc_info=True)

    def _handle(self, entry: dg.EventLogEntry) -> None:
        if (mat := entry.asset_materialization) is not None and mat.partition in self.ids:
            self._built(mat.partition, mat.asset_key.to_user_string(), mat.metadata)
        elif (check := entry.asset_check_evaluation) is not None and not check.passed:
            if check.partition in self.ids:
                self._check_failed(check)
        elif entry.dagster_event is None and (failed := parse_story_failed(entry.user_message)):
            self._story_failed(*failed)
        elif (event := entry.dagster_event) is not None and (
            event.is_step_failure or event.is_run_failure
        ):
            error = (
                event.step_failure_data.error
                if event.is_step_failure
                else event.job_failure_data.error
            )
            while error is not None and error.cause is not None:
                error = error.cause
            if error is not None:
                self.run_errors.append(one_line(self.redact(error.message)))

    def _built(self, sid: str, asset: str, metadata) -> None:
        self.done[sid].append(asset)
        cost = float(_meta(metadata, "cost_usd", 0.0))
        self.cost[sid] += cost
        calls, cached = _meta(metadata, "calls", 0), _meta(metadata, "cached_calls", 0)
        if asset == "storybook":
            parts = [f"${self.cost[sid]:.4f}", shown_path(_meta(metadata, "book_uri"))]
        elif asset in ("storybook_pdf", "storybook_epub"):
            column = "pdf_uri" if asset == "storybook_pdf" else "epub_uri"
            parts = [shown_path(_meta(metadata, column))]
        else:
            parts = {
                "structured_story": [
                    f'{_meta(metadata, "scenes")} scenes, "{_meta(metadata, "title")}"'
                ],
                "scene_moments": [f"{_meta(metadata, 'scenes')} scenes"],
                "character_sheet": [f"seed {_meta(metadata, 'seed')}"],
                "scene_images": [f"{_meta(metadata, 'images')} images, {_meta(metadata, 'size')}"],
            }.get(asset, [])
            if cost > 0:
                parts.append(f"${cost:.4f}" + (" cached" if calls and cached == calls else ""))
        progress = f"{len(self.done[sid])}/{self.stages}"
        self._line(sid, self.ok, "green", "  ".join([f"{asset:<16}", f"{progress:>3}", *parts]))

    def _check_failed(self, check) -> None:
        sid, asset = check.partition, check.asset_key.to_user_string()
        if check.check_name == "approved":  # the review gate: held, not failed
            self._line(
                sid,
                "=",
                "yellow",
                f"{asset}: {check.description or 'awaiting review'} "
                f"(storygen approve {sid} --by NAME, or storygen review serve)",
            )
            return
        text = self._error_text(
            sid, f"{asset}: check {check.check_name} failed: {check.description or 'no detail'}"
        )
        if check.severity == dg.AssetCheckSeverity.WARN:
            self._line(sid, "!", "yellow", text)
        elif sid not in self.reported:  # a blocking check: the story stops here
            self.reported.add(sid)
            self._line(sid, self.bad, "red", text)

    def _story_failed(self, sid: str, status: str, error: str) -> None:
        """A story's chain stopped while the batch goes on: its one error line, now (a held
        story had its line from the failed content_safety check already)."""
        if sid in self.ids and sid not in self.reported:
            self.reported.add(sid)
            self._line(sid, self.bad, "red", self._error_text(sid, error))

    def _error_text(self, sid: str, message: str, limit: int = 240) -> str:
        text = one_line(self.redact(message), limit=10**6)
        if len(text) <= limit:
            return text
        return f"{text[:limit].rstrip()}... (the whole error: storygen status {sid})"

    def report_failures(self, rows: list[dict], success: bool) -> None:
        """One error line for each story that did not succeed and has not had its line yet
        (and the run's own error when a run failed although every story is fine)."""
        if not success and all(r["status"] == "succeeded" for r in rows):
            for error in dict.fromkeys(self.run_errors or ["the run failed"]):
                click.echo(f"{click.style(self.bad, fg='red')} {error}", err=True, color=self.color)
        for row in rows:
            sid = row["story_id"]
            if row["status"] in ("succeeded", AWAITING) or sid in self.reported:
                continue
            self.reported.add(sid)
            reason = row.get("error") or (
                f"not finished ({row['status']}): "
                + ("; ".join(dict.fromkeys(self.run_errors)) or "the run failed")
            )
            self._line(sid, self.bad, "red", self._error_text(sid, str(reason)))

    def summary(self, rows: list[dict], before: dict[str, float], after: dict[str, float]):
        width = max(self.width, 5)
        sw = max([9, *(len(r["status"]) for r in rows)])
        click.echo(f"{'story':<{width}}  {'status':<{sw}}  {'scenes':>6}  {'cost':>8}  books")
        indent = " " * (width + sw + 22)
        for r in rows:
            cost = f"${after.get(r['story_id'], 0.0):.4f}"
            files = book_files(r) if r["status"] == "succeeded" else ["-"]
            click.echo(
                f"{r['story_id']:<{width}}  {r['status']:<{sw}}  {r['scenes']:>6}  {cost:>8}  "
                f"{files[0]}"
            )
            for path in files[1:]:
                if path != "-":
                    click.echo(indent + path)
        books = sum(1 for r in rows if r["book"] and r["status"] == "succeeded")
        waiting = sum(1 for r in rows if r["status"] == AWAITING)
        failed = sum(1 for r in rows if r["status"] not in ("succeeded", AWAITING))
        total, paid = sum(after.values()), sum(after.values()) - sum(before.values())
        click.echo(
            f"{books} {'book' if books == 1 else 'books'} made, {failed} failed, "
            + (f"{waiting} awaiting review, " if waiting else "")
            + f"{time.monotonic() - self.started:.1f} s, cost ${total:.4f} "
            f"(${paid:.4f} paid in this run)"
        )
        if books:
            click.echo(
                "Open the .html files in a browser and the .epub in an e-reader; the .pdf "
                "is ready to print (trim and bleed set)."
            )
