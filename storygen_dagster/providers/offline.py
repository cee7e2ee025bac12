"""Offline providers: no network, deterministic for a request, genuinely driven by it."""

from __future__ import annotations

import asyncio
import io
import random
import time
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

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
    GeneratedImage,
    ImageService,
    StoryLLM,
    T,
)
from storygen_dagster.providers.limits import global_slots

OFFLINE_MODEL = "storygen-offline-v1"


def _rng(*parts: object) -> random.Random:
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
    rng = _rng("story", request.content(), *([guidance] if guidance else []))
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
    rng = _rng("style", story.story_meta.model_dump())
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


class OfflineImageService(ImageService):
    """Real PNGs drawn with Pillow: sky, ground, sun or moon, trees, the child and a friend,
    placed and coloured from the prompt so every scene looks different."""

    provider_name = "offline"
    model = "storygen-offline-painter-v1"

    def __init__(self, latency_s: float = 0.0, max_concurrency: int = 16):
        self.latency_s = latency_s
        self.max_concurrency = max_concurrency

    async def generate_image(
        self, prompt: str, ctx: CallContext, *, width: int, height: int, seed: int
    ) -> GeneratedImage:
        started = time.perf_counter()
        if self.latency_s:
            async with global_slots(self.max_concurrency):
                await asyncio.sleep(self.latency_s)
        # Drawing is CPU work; keep the event loop free for the other scenes' calls.
        png = await asyncio.to_thread(paint_scene, prompt, width, height, seed)
        return self._generated(
            png,
            prompt,
            width,
            height,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )


NAMED_COLORS = {
    "orange": (240, 140, 40),
    "blue": (60, 110, 220),
    "green": (60, 170, 90),
    "yellow": (245, 205, 50),
    "purple": (150, 80, 200),
    "red": (210, 50, 50),
    "pink": (240, 130, 180),
    "teal": (40, 160, 160),
}


def _prompt_color(prompt: str, rng: random.Random) -> tuple[int, int, int]:
    """The first colour word of the character description dresses the child (as it would in a
    real model's picture); otherwise a random one."""
    lowered = prompt.lower()
    found = sorted(
        (lowered.find(name), rgb) for name, rgb in NAMED_COLORS.items() if name in lowered
    )
    if found:
        return found[0][1]
    return (rng.randint(60, 240), rng.randint(60, 240), rng.randint(60, 240))


def paint_scene(prompt: str, width: int, height: int, seed: int) -> bytes:
    rng = _rng("image", prompt, seed)
    night = any(w in prompt.lower() for w in ("night", "moon", "dark", "evening"))
    top = (20, 24, 70) if night else (rng.randint(90, 150), rng.randint(160, 210), 245)
    bottom = (70, 60, 120) if night else (250, rng.randint(200, 235), rng.randint(170, 210))
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    horizon = int(height * rng.uniform(0.55, 0.7))
    for y in range(horizon):
        f = y / max(horizon - 1, 1)
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(int(a + (b - a) * f) for a, b in zip(top, bottom, strict=True)),
        )
    ground = (rng.randint(40, 90), rng.randint(120, 170), rng.randint(50, 90))
    draw.rectangle([0, horizon, width, height], fill=ground)
    # Rolling hills.
    for _ in range(3):
        cx, r = rng.randint(0, width), rng.randint(width // 6, width // 3)
        shade = tuple(max(0, c - rng.randint(5, 30)) for c in ground)
        draw.ellipse([cx - r, horizon - r // 3, cx + r, horizon + r], fill=shade)
    sx, sy, sr = rng.randint(60, width - 60), rng.randint(40, horizon // 2), rng.randint(35, 60)
    draw.ellipse(
        [sx - sr, sy - sr, sx + sr, sy + sr], fill=(245, 240, 200) if night else (255, 210, 80)
    )
    if night:
        for _ in range(60):
            x, y = rng.randint(0, width), rng.randint(0, horizon)
            draw.point([(x, y), (x + 1, y)], fill=(255, 255, 220))
    for _ in range(rng.randint(3, 7)):
        tx, th = rng.randint(0, width), rng.randint(90, 200)
        base = horizon + rng.randint(0, 40)
        draw.rectangle([tx - 8, base - th // 3, tx + 8, base], fill=(110, 75, 45))
        draw.ellipse(
            [tx - 45, base - th, tx + 45, base - th // 3 + 20], fill=(40, rng.randint(110, 160), 60)
        )
    # The child: body in a colour from the prompt, head, arms.
    body = _prompt_color(prompt.split(", a ", 1)[-1], rng)
    cx, feet = rng.randint(width // 4, 3 * width // 5), horizon + rng.randint(60, 140)
    draw.rectangle([cx - 35, feet - 150, cx + 35, feet - 40], fill=body)
    draw.rectangle([cx - 30, feet - 40, cx - 8, feet], fill=(60, 60, 110))
    draw.rectangle([cx + 8, feet - 40, cx + 30, feet], fill=(60, 60, 110))
    draw.line([(cx - 35, feet - 130), (cx - 75, feet - 90)], fill=body, width=14)
    draw.line([(cx + 35, feet - 130), (cx + 75, feet - rng.randint(60, 170))], fill=body, width=14)
    draw.ellipse([cx - 38, feet - 225, cx + 38, feet - 150], fill=(236, 190, 150))
    draw.ellipse([cx - 40, feet - 235, cx + 40, feet - 190], fill=(rng.randint(40, 140), 50, 30))
    # The friend: a round animal beside the child.
    ax = cx + rng.choice([-1, 1]) * rng.randint(140, 260)
    fur = (rng.randint(150, 230), rng.randint(80, 160), rng.randint(30, 90))
    draw.ellipse([ax - 55, feet - 80, ax + 55, feet], fill=fur)
    draw.ellipse([ax - 30, feet - 130, ax + 30, feet - 70], fill=fur)
    draw.polygon([(ax - 28, feet - 115), (ax - 18, feet - 155), (ax - 6, feet - 122)], fill=fur)
    draw.polygon([(ax + 28, feet - 115), (ax + 18, feet - 155), (ax + 6, feet - 122)], fill=fur)
    for ex in (ax - 11, ax + 11):
        draw.ellipse([ex - 4, feet - 108, ex + 4, feet - 100], fill=(20, 20, 20))
    img = img.filter(ImageFilter.SMOOTH)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False)
    return out.getvalue()
