"""The picture reviewer's interface (issue 16): given a scene picture and what it should show,
a verdict per criterion (domain/picture_review.py) and the provenance of the review's calls.
Implementations: the offline reviewer (offline_review.py, checks made on the PNG itself) and
any OpenAI-compatible vision chat model (vision_chat.py)."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from storygen_dagster.domain.models import Provenance
from storygen_dagster.domain.picture_review import Verdict
from storygen_dagster.providers.base import CallContext


@dataclass(frozen=True)
class ReviewSubject:
    """What the picture of one scene should show."""

    scene_number: int
    text: str  # the scene's text
    moment: str  # the moment chosen to draw
    prompt: str  # the composed image prompt the picture was first drawn from
    child_name: str
    age: int
    card: str  # the child as the visual profile describes them
    friend: str  # the side character's description; '' when the story has none
    sheet: bytes | None = None  # the character sheet's PNG, when the story has one


@dataclass(frozen=True)
class Reviewed:
    verdict: Verdict
    provenance: Provenance


class PictureReviewer(abc.ABC):
    name: str = "abstract"
    model: str = "abstract"

    @abc.abstractmethod
    async def review(self, png: bytes, subject: ReviewSubject, ctx: CallContext) -> Reviewed:
        """The verdict on `png` as the picture of `subject`. Raises ProviderError when no
        verdict could be had (after retries and one repair of an invalid reply)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass
