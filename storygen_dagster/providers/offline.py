"""The offline story model: no network, deterministic for a request, genuinely driven by it
(the offline painter is in offline_painter.py)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.models import (
    BaseStyle,
    ChildProfile,
    Clothing,
    Favorites,
    PhysicalAppearance,
    Provenance,
    Scene,
    SceneMoment,
    SideCharacter,
    StoryMeta,
    StoryRequest,
    StructuredStory,
    VisualProfile,
)
from storygen_dagster.domain.prompts import RenderedPrompt
from storygen_dagster.domain.reply_rules import NO_RULES, ReplyRules
from storygen_dagster.providers import offline_tables as t
from storygen_dagster.providers.base import (
    CallContext,
    Generated,
    StoryLLM,
    T,
)
from storygen_dagster.providers.limits import global_slots

OFFLINE_MODEL = "storygen-offline-v1"


def seeded_rng(*parts: object) -> random.Random:
    return random.Random(int(content_hash([str(p) for p in parts])[:16], 16))


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class OfflineStoryLLM(StoryLLM):
    provider_name = "offline"
    model = OFFLINE_MODEL

    def __init__(self, latency_s: float = 0.0, max_concurrency: int = 16):
        self.latency_s = latency_s
        self.max_concurrency = max_concurrency

    async def _generate(
        self,
        prompt: RenderedPrompt,
        response_model: type[T],
        ctx: CallContext,
        *,
        rules: ReplyRules = NO_RULES,
        **inputs: Any,
    ) -> Generated[T]:
        started = time.perf_counter()
        if self.latency_s:
            # A simulated call holds a slot of the process-wide limit, as a real one does.
            async with global_slots(self.max_concurrency):
                await asyncio.sleep(self.latency_s)
        builder = {
            StructuredStory: lambda: story_for(inputs["request"], inputs.get("guidance")),
            VisualProfile: lambda: visual_profile_for(inputs["story"]),
            BaseStyle: lambda: base_style_for(inputs["story"]),
            SceneMoment: lambda: _moment(inputs["story"], inputs["scene_number"]),
        }[response_model]
        value = response_model.model_validate(builder().model_dump())
        return Generated(
            value=value,
            provenance=Provenance(
                provider=self.provider_name,
                model=self.model,
                prompt_name=prompt.name,
                prompt_version=prompt.version,
                prompt_sha256=prompt.sha256,
                latency_ms=round((time.perf_counter() - started) * 1000, 3),
                prompt_tokens=_tokens(prompt.text),
                completion_tokens=_tokens(value.model_dump_json()),
            ),
        )


def story_for(request: StoryRequest, guidance: str | None = None) -> StructuredStory:
    # A reviewer's note makes another (still deterministic) story, as a model would.
    rng = seeded_rng("story", request.content(), *([guidance] if guidance else []))
    gender = (request.gender or rng.choice(["girl", "boy", "child"])).lower()
    name_pool = t.NAMES.get(gender, t.NAMES["child"])
    name = request.child_name or rng.choice(name_pool)
    age = request.age or rng.randint(3, 6)
    fav = request.favorites
    favorites = Favorites(
        animal=(fav and fav.animal) or rng.choice(t.ANIMALS),
        color=(fav and fav.color) or rng.choice(t.COLORS),
        toy=(fav and fav.toy) or rng.choice(t.TOYS),
    )
    personality = request.personality or rng.sample(t.PERSONALITIES, 2)
    fears = request.fears if request.fears is not None else [rng.choice(t.FEARS)]
    value = request.value_to_teach or rng.choice(t.VALUES)
    setting = request.setting or rng.choice(t.SETTINGS)
    tone = request.tone or rng.choice(t.TONES)
    count = request.scene_count or rng.randint(3, 5)
    side_text = request.side_character or f"a wise old {favorites.animal}"
    possessive = {"girl": "her", "boy": "his"}.get(gender, "their")
    words = {
        "name": name,
        "age": age,
        "setting": setting,
        "toy": favorites.toy,
        "animal": favorites.animal,
        "color": favorites.color,
        "value": value,
        "fear": fears[0] if fears else "the unknown",
        "personality": personality[0],
        "possessive": possessive,
        "side": side_text[0].upper() + side_text[1:],
        "side_lower": side_text,
    }
    arc = {
        3: [t.OPENINGS, t.FEAR_SCENES, t.VALUE_SCENES],
        4: [t.OPENINGS, t.FEAR_SCENES, t.HELP_SCENES, t.VALUE_SCENES],
        5: [t.OPENINGS, t.FEAR_SCENES, t.HELP_SCENES, t.MIDDLE_SCENES, t.VALUE_SCENES],
    }[count]
    texts = [rng.choice(pool).format(**words) for pool in arc]
    texts[-1] = f"{texts[-1]} {rng.choice(t.ENDINGS).format(**words)}"
    title = f"{name} and the {favorites.animal.title()}: A Story of {value.title()}"
    return StructuredStory(
        child_profile=ChildProfile(
            name=name,
            age=age,
            gender=gender,
            personality=personality,
            fears=fears,
            favorites=favorites,
            physical_appearance=PhysicalAppearance(
                height=rng.choice(t.HEIGHTS),
                build=rng.choice(t.BUILDS),
                skin_tone=rng.choice(t.SKIN_TONES),
                hair_color=rng.choice(t.HAIR_COLORS),
                hair_style=rng.choice(t.HAIR_STYLES),
                eye_color=rng.choice(t.EYE_COLORS),
                accessories=[rng.choice(t.ACCESSORIES)],
                clothing=Clothing(
                    top=f"{favorites.color} {rng.choice(t.TOPS)}",
                    bottom=rng.choice(t.BOTTOMS),
                    shoes=rng.choice(t.SHOES),
                ),
            ),
        ),
        side_character=SideCharacter(exists=True, description=side_text),
        story_meta=StoryMeta(
            value_to_teach=value,
            setting_description=setting,
            scene_count=count,
            tone=tone,
            story_title=title,
        ),
        scenes=[Scene(scene_number=i, text=text) for i, text in enumerate(texts, start=1)],
    )


def visual_profile_for(story: StructuredStory) -> VisualProfile:
    child = story.child_profile
    look = child.physical_appearance
    extras = f", wearing {', '.join(look.accessories)}" if look.accessories else ""
    return VisualProfile(
        character_prompt=(
            f"a {child.age}-year-old {child.gender}, {look.height}, {look.build}, {look.skin_tone} "
            f"skin, {look.hair_color} {look.hair_style} hair, {look.eye_color} eyes, "
            f"{look.clothing.top}, {look.clothing.bottom}, {look.clothing.shoes}{extras}"
        ),
        side_character_prompt=story.side_character.description
        if story.side_character.exists
        else "",
    )


def base_style_for(story: StructuredStory) -> BaseStyle:
    rng = seeded_rng("style", story.story_meta.model_dump())
    return BaseStyle(
        art_style=rng.choice(t.ART_STYLES),
        lighting=rng.choice(t.LIGHTING),
        atmosphere=rng.choice(t.ATMOSPHERES),
        color_scheme=f"palette led by {story.child_profile.favorites.color}, soft pastels",
        composition_rules=rng.choice(t.COMPOSITION),
    )


def _moment(story: StructuredStory, scene_number: int) -> SceneMoment:
    scene = story.scenes[scene_number - 1]
    first_sentence = scene.text.split(". ")[0].rstrip(".")
    return SceneMoment(
        scene_number=scene_number,
        moment=f"{story.child_profile.name} in scene {scene_number}: {first_sentence}",
    )
