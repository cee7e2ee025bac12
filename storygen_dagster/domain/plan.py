"""The story plan's two rules, in one place: who owns a field (a user edit is the user's until
an AI write is told to overwrite it), and whether a stored value is current (the fingerprint
of its inputs now equals the one stored with it). The engine, the writes, `storygen status`
and the `up_to_date` check all decide with these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def user_owned(
    sources: Mapping[str, Any] | None, fields: Iterable[str] | None = None, overwrite: bool = False
) -> set[str]:
    """The fields (of `fields`, or all) whose field_sources entry says a user wrote them last."""
    if overwrite:
        return set()
    sources = sources or {}
    names = sources if fields is None else fields
    return {f for f in names if sources.get(f) == "user"}


def value_state(current: str, stored: str | None, built: bool) -> str | None:
    """None when the value is current, else why not: missing, no fingerprint, inputs changed."""
    if not built:
        return "missing"
    if stored is None:
        return "no fingerprint"
    return None if stored == current else "inputs changed"


def needs_build(current: str, stored: str | None) -> bool:
    """With --stale-only: build a value only when its inputs changed (or it has none stored)."""
    return stored != current
