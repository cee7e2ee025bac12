"""A story that fails inside the one story step, told as it happens.

Dagster has no per-partition failure event inside a step (dagster-io/dagster#17836): the step
fails once, at its end, for every story that failed. So each story's failure is recorded in
Postgres the moment its chain stops (status failed or held, with the error) and logged as one
ERROR message of a fixed form, which `storygen demo/request/run` turn into the story's error
line while the rest of the batch is still running."""

import re

_FORM = re.compile(r"^story (?P<story_id>\S+) (?P<status>failed|held): (?P<error>.*)$", re.S)


def story_failed_message(story_id: str, status: str, error: str) -> str:
    return f"story {story_id} {status}: {error}"


def parse_story_failed(message: str | None) -> tuple[str, str, str] | None:
    """(story_id, status, error) of a message written by `story_failed_message`, else None."""
    found = _FORM.match(message or "")
    return None if found is None else (found["story_id"], found["status"], found["error"])
