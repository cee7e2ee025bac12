"""The vision reviewer against the loopback fake as real models answer: schema-only replies that
ignore the prompt, stray keys and strings for numbers, a criterion left out, fenced JSON with
chatter, a 429: each still gives one verdict per criterion for the scene asked about."""

import asyncio

import pytest

from storygen_dagster.defs.reviewer import VisionModelReview
from storygen_dagster.domain.picture_review import CRITERIA
from storygen_dagster.providers.base import CallContext
from storygen_dagster.providers.offline_painter import paint_scene
from storygen_dagster.providers.reviewer import ReviewSubject
from tests.conftest import TEST_HEIGHT, TEST_WIDTH
from tests.fakes.helpers import CHAT_MODEL, KEY

pytest_plugins = ["tests.fakes.fixtures"]

SUBJECT = ReviewSubject(
    scene_number=2,
    text="Mia runs up the hill with her red kite.",
    moment="Mia running up a green hill holding a red kite",
    prompt="Mia, a 4-year-old girl, orange top. With a small fox. Mia runs with a kite.",
    child_name="Mia",
    age=4,
    card="a 4-year-old girl, orange top",
    friend="a small fox",
)
KITE = {"fail": {"moment_depicted": "no kite"}, "fix": "show the red kite"}


def _review(fake, engine):
    reviewer = VisionModelReview(model=CHAT_MODEL, base_url=fake.url, api_key=KEY).client(engine)
    png = paint_scene(SUBJECT.prompt, TEST_WIDTH, TEST_HEIGHT, 5)
    ctx = CallContext(story_id="replies-1", asset="illustrations_reviewed", scene_number=2)
    return asyncio.run(reviewer.review(png, SUBJECT, ctx))


@pytest.mark.parametrize(
    "fault",
    [
        {"quirks": ["extra_keys", "string_numbers", "wrapped"]},
        {"content": "Here is my review:\n```json\n{json}\n```\nHope this helps!"},
        {"status": 429, "headers": {"Retry-After": "0"}},
    ],
    ids=["stray-keys", "fenced", "429"],
)
def test_quirky_replies_give_the_models_verdict(fake, provider_env, engine, fault):
    fake.queue("chat", fault)
    fake.reject(2, KITE, KITE)  # the 429's retry is the model's first answer
    reviewed = _review(fake, engine)
    verdict = reviewed.verdict
    assert set(verdict.criteria) == set(CRITERIA) and verdict.failed == ["moment_depicted"]
    assert verdict.suggested_fix == "show the red kite"
    assert reviewed.provenance.repairs == 0
    assert reviewed.provenance.prompt_name == "picture_review"


def test_a_criterion_left_out_is_repaired(fake, provider_env, engine):
    fake.queue("chat", {"drop_criteria": ["no_text", "safe_for_age"]})
    reviewed = _review(fake, engine)
    assert set(reviewed.verdict.criteria) == set(CRITERIA)
    assert reviewed.provenance.repairs == 1 and len(fake.reviews()) == 2
    repair = fake.reviews()[1].body["messages"][-1]["content"]
    assert "no_text: Field required" in repair and "safe_for_age: Field required" in repair
    # The repair carries the pictures again.
    parts = fake.reviews()[1].body["messages"][1]["content"]
    assert any(p.get("type") == "image_url" for p in parts)


def test_a_schema_only_model_answers_every_criterion_for_the_scene(fake, provider_env, engine):
    fake.queue("chat", {"schema_only": True})
    reviewed = _review(fake, engine)
    assert set(reviewed.verdict.criteria) == set(CRITERIA)
    assert reviewed.provenance.repairs == 0 and len(fake.reviews()) == 1
    schema = fake.reviews()[0].body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["scene_number"]["enum"] == [2]
    assert set(CRITERIA) <= set(schema["required"])
