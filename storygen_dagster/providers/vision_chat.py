"""The picture review by any vision-capable OpenAI-compatible chat model: the versioned
`picture_review` prompt, the scene picture (and the character sheet when the story has one) as
data URI content parts, a strict JSON schema reply (one verdict per criterion, the scene pinned),
through the same chat client as the story's text: call cache, ledger, budget, retries on
429/5xx, tolerant parsing of what real models send and one repair of an invalid reply."""

from __future__ import annotations

from storygen_dagster.domain.picture_review import (
    PictureReviewReply,
    Verdict,
    picture_review_rules,
)
from storygen_dagster.domain.prompts import render_prompt
from storygen_dagster.providers.base import CallContext
from storygen_dagster.providers.openai_chat import OpenAIChatLLM
from storygen_dagster.providers.reference import png_data_uri
from storygen_dagster.providers.reviewer import PictureReviewer, Reviewed, ReviewSubject

SYSTEM = (
    "You check illustrations for children's picture books. Look at the pictures, judge every "
    "criterion you are given, and answer with exactly one JSON object that matches the JSON "
    "schema 'PictureReviewReply'. No prose, no markdown."
)


class OpenAIVisionReviewer(PictureReviewer):
    name = "openai"

    def __init__(self, chat: OpenAIChatLLM):
        self.chat = chat
        self.model = chat.model

    async def review(self, png: bytes, subject: ReviewSubject, ctx: CallContext) -> Reviewed:
        prompt = render_prompt(
            "picture_review",
            age=subject.age,
            moment=subject.moment,
            child_name=subject.child_name,
            card=subject.card,
            friend=subject.friend,
            has_sheet=subject.sheet is not None,
            scene_number=subject.scene_number,
            text=subject.text,
        )
        images: dict[str, str] = {}
        content: list[dict] = [{"type": "text", "text": prompt.text}]
        pictures = [("The picture to review:", png)]
        if subject.sheet is not None:
            pictures.append(("The character sheet (how the cast must look):", subject.sheet))
        for label, data in pictures:
            marker, uri = png_data_uri(data)
            images[marker] = uri
            content += [
                {"type": "text", "text": label},
                {"type": "image_url", "image_url": {"url": marker}},
            ]
        messages: list[dict] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": content},
        ]
        result = await self.chat.complete(
            ctx,
            prompt,
            messages,
            PictureReviewReply,
            picture_review_rules(subject.scene_number),
            images=images,
        )
        reply: PictureReviewReply = result.value
        verdict = Verdict.from_reply(reply, reviewer=self.name, model=self.model)
        return Reviewed(verdict, result.provenance)

    async def aclose(self) -> None:
        await self.chat.aclose()
