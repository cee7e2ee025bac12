"""Pure domain: contracts, prompts, composition budget, images, book."""

import pytest
from pydantic import ValidationError

from storygen_dagster.domain import fingerprints as fp
from storygen_dagster.domain.book import Page, render_book
from storygen_dagster.domain.compose import compose_image_prompt
from storygen_dagster.domain.ids import InvalidStoryId, story_id_for, validate_story_id
from storygen_dagster.domain.images import ImageCheckError, inspect_png
from storygen_dagster.domain.models import (
    BaseStyle,
    SideCharacter,
    StoryRequest,
    StructuredStory,
    VisualProfile,
)
from storygen_dagster.domain.prompts import PROMPT_VERSIONS, render_prompt
from storygen_dagster.providers.offline import story_for
from storygen_dagster.providers.offline_painter import paint_scene


def _fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"age": 9}, "age"),
        ({"age": 2}, "age"),
        ({"age": "five"}, "age"),
        ({"scene_count": 6}, "scene_count"),
        ({"personality": "brave"}, "personality"),
        ({"favorites": {"animal": "fox", "planet": "mars"}}, "favorites.planet"),
        ({"nickname": "x"}, "nickname"),
        ({"story_id": "../x"}, "story_id"),
        ({"story_id": "Has Caps"}, "story_id"),
        ({"child_name": "x" * 81}, "child_name"),
        ({"child_name": "   "}, "child_name"),
        ({"fears": ["a"] * 9}, "fears"),
    ],
)
def test_bad_request_names_the_field(payload, field):
    with pytest.raises(ValidationError) as info:
        StoryRequest.model_validate(payload)
    assert field in _fields(info.value)


def test_empty_request_is_valid_and_every_field_optional():
    assert StoryRequest.model_validate({}).content() == {}


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "-lead", "A", "x" * 65, "a b", "é"])
def test_story_id_validation_rejects_unsafe_ids(bad):
    with pytest.raises(InvalidStoryId):
        validate_story_id(bad)


def test_generated_story_id_is_deterministic_and_valid():
    payload = {"child_name": "Zoë Ann", "age": 4}
    sid = story_id_for(payload)
    assert sid == story_id_for(dict(payload)) and validate_story_id(sid)
    assert sid != story_id_for({"child_name": "Zoë Ann", "age": 5})


def _story_dict(count=3, scenes=None):
    story = story_for(StoryRequest(scene_count=count)).model_dump()
    if scenes is not None:
        story["scenes"] = scenes
    return story


def test_story_scene_count_must_match_meta():
    bad = _story_dict(4, scenes=[{"scene_number": i, "text": "t"} for i in (1, 2, 3)])
    with pytest.raises(ValidationError, match="scene_count is 4"):
        StructuredStory.model_validate(bad)


def test_story_scene_numbers_must_run_from_one():
    bad = _story_dict(3, scenes=[{"scene_number": i, "text": "t"} for i in (1, 3, 4)])
    with pytest.raises(ValidationError, match=r"1\.\.3"):
        StructuredStory.model_validate(bad)


def test_story_scene_text_must_not_be_empty():
    bad = _story_dict(3, scenes=[{"scene_number": i, "text": " "} for i in (1, 2, 3)])
    with pytest.raises(ValidationError, match=r"scenes\.0\.text|at least 1 character"):
        StructuredStory.model_validate(bad)


def test_offline_story_is_driven_by_the_request_and_deterministic():
    req = StoryRequest(
        child_name="Noor",
        age=4,
        fears=["thunder"],
        value_to_teach="patience",
        favorites={"animal": "otter"},
        setting="a rainy harbour",
        scene_count=5,
    )
    story = story_for(req)
    assert story == story_for(req)
    assert story.child_profile.name == "Noor" and story.child_profile.age == 4
    assert story.child_profile.fears == ["thunder"]
    assert story.story_meta.value_to_teach == "patience"
    assert story.story_meta.setting_description == "a rainy harbour"
    assert len(story.scenes) == 5
    text = " ".join(s.text for s in story.scenes)
    assert "Noor" in text and "thunder" in text
    other = story_for(StoryRequest(child_name="Sam", scene_count=5))
    assert [s.text for s in other.scenes] != [s.text for s in story.scenes]


def test_prompts_are_versioned_and_hash_their_text():
    story = story_for(StoryRequest(scene_count=3))
    first = render_prompt("scene_moment", story=story.model_dump(mode="json"), scene_number=1)
    third = render_prompt("scene_moment", story=story.model_dump(mode="json"), scene_number=3)
    assert first.version == PROMPT_VERSIONS["scene_moment"]
    assert story.scenes[2].text in third.text and story.scenes[2].text not in first.text
    assert first.sha256 != third.sha256 and len(first.sha256) == 64
    with pytest.raises(KeyError):
        render_prompt("nope")


STYLE = BaseStyle(
    art_style="soft watercolor",
    lighting="golden light",
    atmosphere="cozy",
    color_scheme="warm oranges",
    composition_rules="rule of thirds",
)
PROFILE = VisualProfile(
    character_prompt="a 5-year-old girl with curly black hair and a red coat",
    side_character_prompt="a small fox with a white-tipped tail",
)
SIDE = SideCharacter(exists=True, description="a fox")


def _compose(budget, moment="Maya holds out her lantern to the fox under the pines"):
    return compose_image_prompt(
        base_style=STYLE,
        setting="a pine forest at dusk",
        child_name="Maya",
        visual_profile=PROFILE,
        moment=moment,
        side_character=SIDE,
        budget=budget,
    )


def test_full_prompt_has_every_part_in_order_when_it_fits():
    prompt = _compose(900)
    order = [
        "soft watercolor",
        "cozy",
        "In a pine forest",
        "Maya, a 5-year-old",
        "lantern",
        "small fox",
    ]
    positions = [prompt.index(part) for part in order]
    assert positions == sorted(positions)


def test_budget_trims_side_character_then_style_detail_keeping_the_moment():
    full = _compose(900)
    tight = _compose(len(full) - 20)
    assert len(tight) <= len(full) - 20
    # Only the side character gave way; the style detail and the moment are whole.
    assert "white-tipped" not in tight and "rule of thirds" in tight and "lantern" in tight
    tighter = _compose(200)
    assert len(tighter) <= 200
    assert "rule of thirds" not in tighter and "lantern" in tighter


@pytest.mark.parametrize("budget", [80, 120, 333, 500])
def test_composed_prompt_never_exceeds_budget(budget):
    assert len(_compose(budget, moment="word " * 200)) <= budget


def test_offline_images_are_real_and_differ_per_scene():
    a = paint_scene("Maya by the river", 1024, 768, 1)
    b = paint_scene("Maya at night under the moon", 1024, 768, 2)
    assert a != b
    assert inspect_png(a, width=1024, height=768).stddev > 10
    with pytest.raises(ImageCheckError, match="expected 640x480"):
        inspect_png(a, width=640, height=480)


def test_blank_and_broken_images_are_rejected():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (0, 0, 0)).save(buf, format="PNG")
    with pytest.raises(ImageCheckError, match="blank"):
        inspect_png(buf.getvalue())
    with pytest.raises(ImageCheckError, match="does not decode"):
        inspect_png(b"not a png")


def test_book_escapes_text_and_rejects_missing_pages():
    story = story_for(StoryRequest(scene_count=3, child_name="Ann"))
    pages = [
        Page(s.scene_number, f"{s.text} <script>x</script>", f"../../i/{s.scene_number}.png", "alt")
        for s in story.scenes
    ]
    html = render_book("ann-1", story, pages, 1024, 768)
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    with pytest.raises(ValueError, match="do not match"):
        render_book("ann-1", story, pages[:2], 1024, 768)
    assert '<html lang="en">' in html
    assert '<html lang="pt-BR">' in render_book("ann-1", story, pages, 1024, 768, language="pt-BR")


def test_book_fingerprint_covers_what_the_book_shows():
    """The HTML book shows the dedication (child, age, value), the cast page's title (the side
    character) and declares its language: a change to any makes it stale; a field it does not
    show (the tone) does not."""
    story = story_for(StoryRequest(scene_count=3, child_name="Ann"))
    pages = [(s.scene_number, s.text, "ab" * 32) for s in story.scenes]
    base = fp.storybook(story, pages, None, "en")
    assert fp.storybook(story, pages, None, "en") == base

    def changed(path: str, value) -> str:
        data = story.model_dump(mode="json")
        section, name = path.split(".")
        data[section][name] = value
        return fp.storybook(StructuredStory.model_validate(data), pages, None, "en")

    assert changed("child_profile.age", 6 if story.child_profile.age != 6 else 5) != base
    assert changed("story_meta.value_to_teach", "patience") != base
    assert changed("side_character.description", "Pip, a brave mouse") != base
    assert changed("story_meta.tone", "calm and slow") == base
    assert fp.storybook(story, pages, None, "de") != base
    assert fp.storybook(story, pages, "cd" * 32, "en") != base
