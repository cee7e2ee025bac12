"""What the engine reports: a value built and stored (`Built`), a check evaluated for one story
(`CheckOutcome`), and the error that stops one story (`StageError`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from storygen_dagster.domain.models import Provenance


class Markdown(str):
    """A fact to show as markdown (a table, a picture preview)."""


class Uri(str):
    """A fact that is a location (an object URI)."""


@dataclass(frozen=True)
class Built:
    """One story's value of one asset, stored with its provenance. `data_version` is the
    fingerprint of the value itself; `fingerprint` that of the inputs it was built from;
    `inputs` the data versions of the upstream values it was built from."""

    story_id: str
    asset: str
    facts: dict[str, Any]
    provenance: list[Provenance]
    fingerprint: str | dict[str, str] | None
    data_version: str
    by: str
    inputs: dict[str, str] = field(default_factory=dict)  # upstream asset -> its data version


@dataclass(frozen=True)
class CheckOutcome:
    story_id: str
    asset: str
    check: str
    problems: list[str]
    facts: dict[str, Any] = field(default_factory=dict)
    severity: str | None = None  # "error" / "warn" for this evaluation; None: the check's own

    @property
    def passed(self) -> bool:
        return not self.problems


class StageError(Exception):
    """One story stops at `asset`: `hold` when a blocking check held it, with the story status
    `held_as` ('held': content safety; 'needs_review': a picture failed the safety review)."""

    def __init__(
        self,
        story_id: str,
        asset: str,
        message: str,
        *,
        check: str | None = None,
        problems: list[str] | None = None,
        hold: bool = False,
        held_as: str = "held",
    ):
        super().__init__(message)
        self.story_id, self.asset, self.check = story_id, asset, check
        self.problems, self.hold, self.held_as = problems or [], hold, held_as


class Reporter(Protocol):
    def built(self, outcome: Built) -> None: ...

    def checked(self, outcome: CheckOutcome) -> None: ...
