"""The picture review's pure parts: folding a fix into the prompt within the budget, the verdict
from a reply, the reply parsed from what models send, and the offline reviewer's checks."""

import io

import pytest
from PIL import Image

from storygen_dagster.domain.compose import (
    character_card,
    compose_image_prompt,
    compose_sheet_prompt,
)
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.domain.picture_review import (
    CRITERIA,
    PictureReviewReply,
    Verdict,
    fold_fix,
    picture_review_rules,
)
from storygen_dagster.providers import offline
from storygen_dagster.providers.offline_painter import paint, paint_scene
from storygen_dagster.providers.offline_review import judge
from storygen_dagster.providers.replies import InvalidReply, parse_reply
from storygen_dagster.providers.reviewer import ReviewSubject
from tests.conftest import TEST_HEIGHT, TEST_WIDTH


def _reply(scene: int = 2, **failed: str) -> dict:
    value = {c: {"passed": c not in failed, "reason": failed.get(c, "fine")} for c in CRITERIA}
    return {"scene_number": scene, **value, "suggested_fix": "show the kite" if failed else ""}


def _chat(content: str) -> dict:
    return {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}


@pytest.mark.parametrize("budget", [120, 300, 900])
def test_a_fix_goes_first_and_the_prompt_stays_within_the_budget(budget):
    prompt = "watercolour, soft light. " + "Mia runs up the green hill with her kite. " * 30
    folded = fold_fix(prompt, "show the red kite high in the sky", budget)
    assert folded.startswith("Important: show the red kite high in the sky. watercolour")
    assert len(folded) <= budget
    assert fold_fix(prompt, "show the red kite", budget, redraw=2).startswith(
        "Important (redraw 2): show the red kite."
    )
    assert fold_fix(prompt[:100], "  ", budget) == prompt[:100]


def test_a_verdict_says_what_failed_and_whether_safety_did():
    reply = PictureReviewReply.model_validate(_reply(safe_for_age="a scary wolf"))
    verdict = Verdict.from_reply(reply, reviewer="openai", model="m")
    assert verdict.failed == ["safe_for_age"] and verdict.safety_failed and not verdict.passed
    assert verdict.reasons() == "safe_for_age: a scary wolf"
    ok = Verdict.from_reply(PictureReviewReply.model_validate(_reply()), reviewer="o", model="m")
    assert ok.passed and not ok.safety_failed


def test_replies_as_models_send_them_are_parsed_and_the_scene_is_checked():
    import json

    fenced = _chat("Sure!\n```json\n" + json.dumps({**_reply(), "confidence": 0.9}) + "\n```")
    parsed = parse_reply(fenced, PictureReviewReply, picture_review_rules(2))
    assert parsed.value.scene_number == 2 and parsed.dropped == ["confidence"]
    strings = _reply()
    strings["no_text"]["passed"] = "false"  # a host that writes booleans as strings
    parsed = parse_reply(_chat(json.dumps(strings)), PictureReviewReply, picture_review_rules(2))
    assert parsed.value.no_text.passed is False
    with pytest.raises(InvalidReply, match="scene_number is 3; the request asks for 2"):
        parse_reply(_chat(json.dumps(_reply(3))), PictureReviewReply, picture_review_rules(2))
    missing = _reply()
    del missing["safe_for_age"]
    with pytest.raises(InvalidReply, match="safe_for_age: Field required"):
        parse_reply(_chat(json.dumps(missing)), PictureReviewReply, picture_review_rules(2))


def _scene():
    story = offline.story_for(StoryRequest(child_name="Mia", scene_count=3, age=4))
    profile, style = offline.visual_profile_for(story), offline.base_style_for(story)
    card = character_card("Mia", profile, story.side_character)
    sheet = paint(compose_sheet_prompt(base_style=style, card=card, child_name="Mia"), 320, 240, 7)
    prompt = compose_image_prompt(
        base_style=style,
        setting=story.story_meta.setting_description,
        child_name="Mia",
        visual_profile=profile,
        moment="Mia flies a kite",
        side_character=story.side_character,
    )
    subject = ReviewSubject(
        2,
        story.scenes[1].text,
        "Mia flies a kite",
        prompt,
        "Mia",
        4,
        profile.character_prompt,
        profile.side_character_prompt,
    )
    return subject, paint(prompt, TEST_WIDTH, TEST_HEIGHT, 5, sheet)


def test_the_offline_reviewer_passes_a_faithful_picture_and_fails_a_blank_quarter():
    subject, png = _scene()
    verdicts, fix = judge(png, subject)
    assert all(ok for ok, _ in verdicts.values()) and fix == ""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.paste((210, 210, 210), (TEST_WIDTH // 2, 0, TEST_WIDTH, TEST_HEIGHT // 2))
    out = io.BytesIO()
    img.save(out, format="PNG")
    verdicts, fix = judge(out.getvalue(), subject)
    assert verdicts["moment_depicted"] == (
        False,
        "the top right of the picture is blank: nothing is drawn there",
    )
    assert fix == "fill the whole picture with the scene"


def test_the_offline_reviewer_fails_another_childs_outfit():
    subject, _ = _scene()
    # The same scene drawn from a card whose clothes are all purple: the top's colour is gone.
    other = subject.prompt
    for colour in ("orange", "blue", "yellow", "red", "green", "pink", "teal"):
        other = other.replace(colour, "purple")
    verdicts, fix = judge(paint_scene(other, TEST_WIDTH, TEST_HEIGHT, 5), subject)
    assert verdicts["child_matches_card"][0] is False
    assert "show Mia's top clearly" in fix
