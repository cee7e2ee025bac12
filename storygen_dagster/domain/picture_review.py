"""The review of a scene picture (issue 16), pure: the criteria, the reply a vision model must
give (one verdict per criterion, in the JSON schema sent to it), the verdict as stored, and how
a reviewer's suggested fix is folded into the composed prompt for a redraw (within the budget).

Criteria: `moment_depicted` (the scene's moment is what is drawn), `child_matches_card` (the
child looks as the character card, and the sheet when there is one, says), `side_character_
present` (the friend is drawn when the text says so), `no_text` (no letters or words in the
picture) and `safe_for_age` (nothing frightening or unsafe for the child's age). The last is
the safety criterion: a picture that still fails it after its redraws holds the story."""

from __future__ import annotations

from pydantic import BaseModel, Field

from storygen_dagster.domain.reply_rules import ReplyRules

CRITERIA: tuple[str, ...] = (
    "moment_depicted",
    "child_matches_card",
    "side_character_present",
    "no_text",
    "safe_for_age",
)
SAFETY_CRITERIA = frozenset({"safe_for_age"})
FIX_MAX_CHARS = 200


class CriterionVerdict(BaseModel):
    passed: bool
    reason: str = Field(max_length=300, description="One short sentence: why")


class PictureReviewReply(BaseModel):
    """What the vision model answers for one picture: one property per criterion, so the
    schema itself asks for each exactly once (a constrained decoder follows the schema and may
    ignore the prompt; a list of verdicts let it repeat one and leave another out)."""

    scene_number: int = Field(ge=1, le=5)
    moment_depicted: CriterionVerdict
    child_matches_card: CriterionVerdict
    side_character_present: CriterionVerdict
    no_text: CriterionVerdict
    safe_for_age: CriterionVerdict
    suggested_fix: str = Field(
        max_length=400,
        description="A short phrase to add to the image prompt so a redraw passes; '' if none",
    )


class Verdict(BaseModel):
    """One picture's review as stored and shown: per criterion (passed, reason)."""

    criteria: dict[str, tuple[bool, str]]
    suggested_fix: str = ""
    reviewer: str
    model: str

    @property
    def failed(self) -> list[str]:
        return [c for c in CRITERIA if c in self.criteria and not self.criteria[c][0]]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def safety_failed(self) -> bool:
        return any(c in SAFETY_CRITERIA for c in self.failed)

    def reasons(self) -> str:
        return "; ".join(f"{c}: {self.criteria[c][1]}" for c in self.failed)

    @classmethod
    def from_reply(cls, reply: PictureReviewReply, *, reviewer: str, model: str) -> Verdict:
        return cls(
            criteria={c: (getattr(reply, c).passed, getattr(reply, c).reason) for c in CRITERIA},
            suggested_fix=reply.suggested_fix.strip(),
            reviewer=reviewer,
            model=model,
        )


def picture_review_rules(scene_number: int) -> ReplyRules:
    """The scene asked about is pinned (an enum of one in the schema)."""
    return ReplyRules(values={"scene_number": scene_number})


def fold_fix(prompt: str, fix: str, budget: int, redraw: int = 1) -> str:
    """The composed prompt with the reviewer's fix in front (what the redraw must get right
    first), the prompt's end giving way so the whole stays within `budget`. From the second
    redraw on the head names the redraw: the same fix again must not be the same request (the
    call cache would answer it with the picture that just failed)."""
    fix = " ".join(fix.split())[:FIX_MAX_CHARS].rstrip(" .")
    if not fix:
        return prompt
    head = f"Important: {fix}." if redraw <= 1 else f"Important (redraw {redraw}): {fix}."
    room = budget - len(head) - 1
    if room < 40:
        return prompt
    body = prompt if len(prompt) <= room else prompt[: room - 1].rsplit(" ", 1)[0] + "."
    return f"{head} {body}"
