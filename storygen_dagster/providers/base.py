"""Provider interfaces. The LLM side renders the versioned prompts itself, so every provider
(offline or real) reports the same template name/version/hash; subclasses only implement
`_generate`. Image providers turn a composed prompt into PNG bytes."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.models import (
    BaseStyle,
    Provenance,
    SceneMoment,
    StoryRequest,
    StructuredStory,
    VisualProfile,
)
from storygen_dagster.domain.prompts import RenderedPrompt, render_prompt
from storygen_dagster.domain.reply_rules import (
    NO_RULES,
    ReplyRules,
    scene_moment_rules,
    structured_story_rules,
)

T = TypeVar("T", bound=BaseModel)


class ProviderError(RuntimeError):
    """A provider call failed for good (after any retries). Never carries secrets."""

    def __init__(self, message: str, *, status_code: int | None = None, fatal: bool = False):
        super().__init__(message)
        self.status_code = status_code
        self.fatal = fatal  # e.g. out of credits: stop the whole run, not just one story


class ImageRejected(ProviderError):
    """The provider answered, but the picture fails the image check (does not decode, wrong
    size, blank): reported by the images_valid asset check, never cached."""


@dataclass(frozen=True)
class CallContext:
    """Where a call comes from, for logs, the call ledger and budgets."""

    story_id: str
    asset: str
    scene_number: int | None = None
    fresh: bool = False  # bypass the call cache


@dataclass
class Generated(Generic[T]):
    value: T
    provenance: Provenance


@dataclass
class GeneratedImage:
    png: bytes
    provenance: Provenance
    width: int
    height: int
    extra: dict[str, Any] = field(default_factory=dict)


class StoryLLM(abc.ABC):
    """The four LLM steps of a story (same names as the original StoryPromptService)."""

    provider_name: str = "abstract"
    model: str = "abstract"

    async def generate_structured_story(
        self,
        request: StoryRequest,
        ctx: CallContext,
        *,
        guidance: str | None = None,
        previous: StructuredStory | None = None,
    ) -> Generated[StructuredStory]:
        """The story from the request; with `guidance` (a reviewer's note on the `previous`
        text) the revision prompt, a call of its own (new cache key, new ledger row)."""
        data = request.model_dump(mode="json")
        if guidance:
            prompt = render_prompt(
                "structured_story_revision",
                request=data,
                guidance=guidance,
                previous=previous.model_dump(mode="json") if previous else None,
            )
        else:
            prompt = render_prompt("structured_story", request=data)
        rules = structured_story_rules(request)
        return await self._fitting(
            prompt, StructuredStory, ctx, rules, request=request, guidance=guidance
        )

    async def generate_visual_profile(
        self, story: StructuredStory, ctx: CallContext
    ) -> Generated[VisualProfile]:
        prompt = render_prompt("visual_profile", story=story.model_dump(mode="json"))
        return await self._fitting(prompt, VisualProfile, ctx, NO_RULES, story=story)

    async def generate_base_style(
        self, story: StructuredStory, ctx: CallContext
    ) -> Generated[BaseStyle]:
        prompt = render_prompt("base_style", story=story.model_dump(mode="json"))
        return await self._fitting(prompt, BaseStyle, ctx, NO_RULES, story=story)

    async def generate_scene_moment(
        self, story: StructuredStory, scene_number: int, ctx: CallContext
    ) -> Generated[SceneMoment]:
        prompt = render_prompt(
            "scene_moment", story=story.model_dump(mode="json"), scene_number=scene_number
        )
        rules = scene_moment_rules(scene_number)
        return await self._fitting(
            prompt, SceneMoment, ctx, rules, story=story, scene_number=scene_number
        )

    async def _fitting(
        self,
        prompt: RenderedPrompt,
        response_model: type[T],
        ctx: CallContext,
        rules: ReplyRules,
        **inputs: Any,
    ) -> Generated[T]:
        """`_generate`, then the request's rules once more whatever the provider did with them:
        a value that does not fit what was asked never reaches storage."""
        result = await self._generate(prompt, response_model, ctx, rules=rules, **inputs)
        problems = rules.problems(result.value)
        if problems:
            raise ProviderError(
                f"{ctx.asset} reply for story {ctx.story_id} does not fit the request: "
                + "; ".join(problems)
            )
        return result

    @abc.abstractmethod
    async def _generate(
        self,
        prompt: RenderedPrompt,
        response_model: type[T],
        ctx: CallContext,
        *,
        rules: ReplyRules = NO_RULES,
        **inputs: Any,
    ) -> Generated[T]:
        """Produce a validated `response_model` for `prompt` that meets `rules` (what the
        request pins). `inputs` are the structured values the prompt was rendered from (the
        offline provider works from them)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass


class ImageService(abc.ABC):
    provider_name: str = "abstract"
    model: str = "abstract"
    # How a scene's request carries the character sheet (providers/reference.py): "none" (the
    # locked seed and the character card in the prompt only), "image_url", "reference_images",
    # "image_edit" (the OpenAI edits endpoint's input image) or "sheet" (the offline painter
    # paints from it).
    reference: str = "none"

    @property
    def uses_reference(self) -> bool:
        return self.reference != "none"

    @abc.abstractmethod
    async def generate_image(
        self,
        prompt: str,
        ctx: CallContext,
        *,
        width: int,
        height: int,
        seed: int,
        reference: bytes | None = None,
    ) -> GeneratedImage:
        """PNG bytes for `prompt` at the given size; `reference` (the character sheet's PNG)
        goes with the request when this service takes one."""

    def character_likeness(
        self, sheet_png: bytes, scene_png: bytes, prompt: str, seed: int
    ) -> float | None:
        """How alike (0..1) the child in a picture this service drew is to the sheet, or None
        when the service cannot tell (the vision review's verdict may)."""
        return None

    def _generated(
        self, png: bytes, prompt: str, width: int, height: int, **facts: Any
    ) -> GeneratedImage:
        """The result with this service's provenance (latency, cost, attempts, seed… in
        `facts`)."""
        return GeneratedImage(
            png=png,
            width=width,
            height=height,
            provenance=Provenance(
                provider=self.provider_name,
                model=self.model,
                prompt_sha256=content_hash(prompt),
                **facts,
            ),
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass
