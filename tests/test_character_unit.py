"""The pure parts of the character sheet (issue 15): the reference mode per model, the checks
on an uploaded sheet, the cast page's title, the card the painter reads, and the likeness
measure on pictures painted from one sheet or another."""

import io

import pytest
from PIL import Image

from storygen_dagster.domain.book import cast_title
from storygen_dagster.domain.compose import character_card, compose_image_prompt
from storygen_dagster.domain.images import ImageCheckError, checked_sheet
from storygen_dagster.domain.likeness import LIKENESS_THRESHOLD, likeness
from storygen_dagster.domain.models import SideCharacter, StoryRequest
from storygen_dagster.providers import offline
from storygen_dagster.providers.factory import ProviderConfigError, check_reference
from storygen_dagster.providers.offline_figures import COLORS, SKIN, paint_sheet, read_card
from storygen_dagster.providers.offline_painter import child_box, paint_scene

KONTEXT, FLUX2, FLUX2_DEV = (
    "black-forest-labs/FLUX.1-kontext-pro",
    "black-forest-labs/FLUX.2-pro",
    "black-forest-labs/FLUX.2-dev",
)
SCHNELL = "black-forest-labs/FLUX.1-schnell"


@pytest.mark.parametrize(
    ("provider", "model", "mode", "resolved"),
    [
        ("together", KONTEXT, "auto", "image_url"),
        ("together", FLUX2, "auto", "reference_images"),
        ("together", FLUX2, "image_url", "image_url"),
        ("together", FLUX2_DEV, "auto", "reference_images"),
        ("together", SCHNELL, "auto", "none"),
        ("together", "my-org/unknown-model", "auto", "none"),
        ("together", KONTEXT, "none", "none"),
        ("openai", "gpt-image-1", "auto", "image_edit"),
        ("openai", "gpt-image-1-mini", "image_edit", "image_edit"),
        ("openai", "dall-e-3", "auto", "none"),
        ("offline", "", "auto", "sheet"),
        ("offline", "", "none", "none"),
    ],
)
def test_reference_mode_resolves_per_model(provider, model, mode, resolved):
    assert check_reference(provider, model, mode) == resolved


@pytest.mark.parametrize(
    ("provider", "model", "mode", "named"),
    [
        ("together", SCHNELL, "image_url", "takes no reference image"),
        ("together", KONTEXT, "reference_images", "takes image_url"),
        ("together", FLUX2_DEV, "image_url", "takes reference_images"),
        ("openai", "gpt-image-1", "image_url", "model gpt-image-1 takes image_edit"),
        ("openai", "dall-e-3", "image_edit", "model dall-e-3 takes no reference image"),
        ("openai", "my-edit-model", "image_edit", "known to take it have 'gpt-image' in"),
        ("together", KONTEXT, "image_edit", "takes image_url"),
        ("together", "my-org/unknown-model", "image_edit", "together images API takes no image_"),
        ("together", KONTEXT, "sometimes", "use one of auto, none"),
    ],
)
def test_a_reference_the_model_cannot_take_is_refused_naming_setting_and_model(
    provider, model, mode, named
):
    with pytest.raises(ProviderConfigError) as err:
        check_reference(provider, model, mode)
    assert f"STORYGEN_IMAGE_REFERENCE={mode}" in str(err.value) and named in str(err.value)


@pytest.mark.parametrize(
    ("mode", "known"),
    [
        ("image_url", "'flux.1-kontext' or 'flux.2'"),
        ("reference_images", "'flux.2-dev' or 'flux.2'"),
    ],
)
def test_an_explicit_reference_for_an_unknown_model_is_refused_naming_the_known_models(mode, known):
    # It used to be sent with a warning: a model that ignores the field draws without the sheet.
    with pytest.raises(ProviderConfigError) as err:
        check_reference("together", "my-org/unknown-model", mode)
    message = str(err.value)
    assert message.startswith(f"STORYGEN_IMAGE_REFERENCE={mode}: model my-org/unknown-model ")
    assert f"the models known to take it have {known} in their name" in message


def test_auto_for_an_unknown_model_falls_back_to_seed_and_card_and_says_so(caplog):
    with caplog.at_level("INFO", logger="storygen.providers"):
        assert check_reference("together", "my-org/unknown-model", "auto") == "none"
    [record] = [r for r in caplog.records if "my-org/unknown-model" in r.getMessage()]
    assert (
        record.levelname == "INFO" and "locked seed and the character card" in record.getMessage()
    )


def _png(size, color=None, fmt="PNG") -> bytes:
    img = Image.new("RGB", size, color or (250, 248, 240))
    if color is None:
        img.paste((200, 40, 40), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def test_an_uploaded_sheet_is_fitted_into_the_book_size_without_cropping():
    png = checked_sheet(
        _png((100, 200), fmt="JPEG"), "tall.jpg", max_bytes=10**6, width=320, height=240
    )
    with Image.open(io.BytesIO(png)) as img:
        assert (img.format, img.size) == ("PNG", (320, 240))
        # Padded on the sides with the sheet's own background, the figure kept whole.
        assert img.getpixel((5, 120))[0] > 240 and img.getpixel((140, 90))[1] < 60


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"hello", "not a decodable PNG or JPEG"),
        (_png((64, 48), fmt="GIF"), "a GIF image"),
        (_png((64, 48), color=(9, 9, 9)), "blank"),
        (_png((9000, 10), color=None), "over the 8192-pixel limit"),
        (b"x" * 5000, "over the 4,000-byte limit"),
    ],
)
def test_a_bad_upload_is_refused_naming_the_file(data, why):
    with pytest.raises(ImageCheckError) as err:
        checked_sheet(data, "me.png", max_bytes=4000, width=320, height=240)
    assert str(err.value).startswith("me.png: ") and why in str(err.value)


@pytest.mark.parametrize(
    ("description", "title"),
    [
        ("a wise old fox", "Meet Maya and the wise old fox"),
        ("Pip, a brave little mouse", "Meet Maya and Pip"),
        ("an owl who loves stars", "Meet Maya and the owl who loves stars"),
    ],
)
def test_cast_page_title_names_the_friend(description, title):
    assert cast_title("Maya", SideCharacter(exists=True, description=description)) == title
    assert cast_title("Maya", SideCharacter(exists=False)) == "Meet Maya"


def _cast(name: str, **request):
    story = offline.story_for(StoryRequest(child_name=name, scene_count=3, **request))
    profile = offline.visual_profile_for(story)
    return story, profile, offline.base_style_for(story)


def test_the_painter_reads_the_card_as_the_visual_profile_writes_it():
    story, profile, _ = _cast("Maya", favorites={"color": "teal", "animal": "fox"})
    cast = read_card(character_card("Maya", profile, story.side_character))
    look = story.child_profile.physical_appearance
    assert cast.top == COLORS["teal"]  # the top is "<favourite colour> <garment>"
    assert cast.skin == next(v for k, v in SKIN.items() if k in look.skin_tone)
    assert cast.friend == (230, 120, 40)  # a fox


def _scene(story, profile, style, moment, seed, sheet):
    prompt = compose_image_prompt(
        base_style=style,
        setting=story.story_meta.setting_description,
        child_name=story.child_profile.name,
        visual_profile=profile,
        moment=moment,
        side_character=story.side_character,
    )
    return prompt, paint_scene(prompt, 320, 240, seed, sheet)


def test_likeness_is_high_for_the_sheets_child_and_low_for_another():
    maya = _cast("Maya", favorites={"color": "orange"}, gender="girl")
    leo = _cast("Leo", favorites={"color": "green"}, gender="boy")
    sheets = {
        who: paint_sheet(character_card(who, c[1], c[0].side_character), 320, 240)
        for who, c in (("Maya", maya), ("Leo", leo))
    }
    for n, seed in enumerate((11, 12, 13), start=1):
        prompt, own = _scene(*maya, f"Maya finds shell {n}", seed, sheets["Maya"])
        _, other = _scene(*maya, f"Maya finds shell {n}", seed, sheets["Leo"])
        box = child_box(prompt, seed, 320, 240, sheets["Maya"])
        assert likeness(sheets["Maya"], own, box) >= LIKENESS_THRESHOLD
        assert likeness(sheets["Maya"], other, box) < LIKENESS_THRESHOLD
