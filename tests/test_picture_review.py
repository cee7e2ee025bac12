"""Every scene picture reviewed, with a bounded redraw (issue 16), against the loopback fake:
its vision reviewer rejects scenes as scripted; every call goes through the cache, the ledger
and the per-story budget."""

import json

import dagster as dg
import sqlalchemy as sa

from storygen_dagster.definitions import build_definitions
from storygen_dagster.defs.reviewer import OfflinePictureReview, VisionModelReview
from storygen_dagster.domain.compose import SHEET_PROMPT_PREFIX
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.storage import call_cache
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.picture_reviews import review_rounds
from tests.fakes.helpers import CHAT_MODEL, IMAGE_MODEL, KEY, image_resource, llm_resource

pytest_plugins = ["tests.fakes.fixtures"]

REVIEWED = dg.AssetCheckKey(dg.AssetKey("scene_images"), "illustrations_reviewed")
KITE = {"fail": {"moment_depicted": "the kite is not in the picture"}, "fix": "show the red kite"}
SCARY = {
    "fail": {"safe_for_age": "a looming dark shadow could frighten a child"},
    "fix": "no shadow",
}


def _defs(fake, resources, **reviewer):
    vision = VisionModelReview(model=CHAT_MODEL, base_url=fake.url, api_key=KEY, **reviewer)
    return build_definitions(
        {
            **resources,
            "llm": llm_resource(fake),
            "images": image_resource(fake),
            "reviewer": vision,
        }
    )


def _register(engine, sid: str) -> None:
    request = StoryRequest(story_id=sid, scene_count=3, side_character="a fox")
    repo.register_request(engine, sid, request, by="test")


def _scene_draws(fake) -> list[dict]:
    bodies = [s.body for s in fake.seen if s.kind == "images"]
    return [b for b in bodies if not b["prompt"].startswith(SHEET_PROMPT_PREFIX)]


def _evaluation(instance):
    found = instance.event_log_storage.get_latest_asset_check_execution_by_key([REVIEWED])
    return found[REVIEWED].evaluation


def _status(engine, sid: str) -> tuple[str, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("select status, book_uri from stories where story_id = :s"), {"s": sid}
        ).one()
    return row[0], row[1]


def test_a_picture_rejected_once_is_redrawn_once_and_passes(
    fake, resources, provider_env, instance, engine
):
    _register(engine, "redraw-1")
    fake.reject(2, KITE)
    defs = _defs(fake, resources)
    [outcome] = materialize_stories(defs, instance, ["redraw-1"])
    assert outcome.success
    draws = _scene_draws(fake)
    assert len(draws) == 4  # three scenes and exactly one extra picture
    redraw = draws[-1]["prompt"]
    assert redraw.startswith("Important: show the red kite.") and len(redraw) <= 900
    reviews = fake.reviews()
    assert len(reviews) == 4
    for seen in reviews:  # the picture and the character sheet, as data URIs
        urls = [
            p["image_url"]["url"]
            for p in seen.body["messages"][1]["content"]
            if p["type"] == "image_url"
        ]
        assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
        assert seen.body["response_format"]["json_schema"]["name"] == "PictureReviewReply"
    # The ledger keys the pictures by sha256, never the base64, and prices the review.
    ledger = call_cache.ledger(engine, "redraw-1")
    review_calls = ledger[ledger["asset"] == "illustrations_reviewed"]
    assert len(review_calls) == 4 and (review_calls["cost_usd"].astype(float) > 0).all()
    with engine.connect() as conn:
        requests = conn.execute(
            sa.text("select request::text from provider_calls where asset = :a"),
            {"a": "illustrations_reviewed"},
        ).scalars()
        assert all("sha256=" in r and "base64" not in r for r in requests)
        audit = conn.execute(
            sa.text(
                "select scene_number, old_value_sha256, new_value_sha256, note from audit_log"
                " where field = 'image_redraw' and story_id = 'redraw-1'"
            )
        ).all()
        stored = conn.execute(
            sa.text(
                "select image_sha256 from scenes where story_id = 'redraw-1' and scene_number = 2"
            )
        ).scalar_one()
    [(scene, old, new, note)] = audit
    assert scene == 2 and new == stored and old != new and "the kite is not in the picture" in note
    evaluation = _evaluation(instance)
    assert evaluation.passed
    meta = evaluation.metadata
    assert meta["redraws"].value == {"1": 0, "2": 1, "3": 0}
    assert set(meta["verdicts"].value) == {"1", "2", "3"}
    assert meta["review_calls"].value == 4 and meta["review_cost_usd"].value > 0
    assert _status(engine, "redraw-1")[0] == "succeeded"
    # A re-run pays for nothing: every picture, review and redraw comes from the cache.
    seen = fake.count()
    assert materialize_stories(defs, instance, ["redraw-1"])[0].success
    assert fake.count() == seen
    assert _evaluation(instance).metadata["review_cached_calls"].value == 4


def test_a_picture_rejected_twice_is_kept_flagged_and_the_book_published_with_a_warning(
    fake, resources, provider_env, instance, engine
):
    _register(engine, "flag-1")
    fake.reject(2, KITE, KITE)
    [outcome] = materialize_stories(_defs(fake, resources), instance, ["flag-1"])
    assert outcome.success
    assert len(_scene_draws(fake)) == 4  # STORYGEN_MAX_REDRAWS=1 by default
    evaluation = _evaluation(instance)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["flagged"].value == [2]
    assert evaluation.metadata["verdicts"].value["2"]["moment_depicted"][0] is False
    status, book = _status(engine, "flag-1")
    assert status == "succeeded" and book
    rounds = [(r["scene_number"], r["round"], r["passed"]) for r in review_rounds(engine, "flag-1")]
    assert sorted(rounds) == [(1, 0, True), (2, 0, False), (2, 1, False), (3, 0, True)]


def test_a_picture_failing_the_safety_review_holds_the_story(
    fake, resources, provider_env, instance, engine
):
    _register(engine, "unsafe-1")
    fake.reject(3, SCARY, SCARY, SCARY)
    defs = _defs(fake, resources, max_redraws=2)
    [outcome] = materialize_stories(defs, instance, ["unsafe-1"])
    assert not outcome.success
    assert len(_scene_draws(fake)) == 5  # two redraws of scene 3
    status, book = _status(engine, "unsafe-1")
    assert status == "needs_review" and book is None
    evaluation = _evaluation(instance)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["unsafe"].value == [3]
    # Run again with the review switched off: the flagged picture still never makes a book.
    off = build_definitions(
        {**resources, "llm": llm_resource(fake), "images": image_resource(fake)}
    )
    assert not materialize_stories(off, instance, ["unsafe-1"], assets=["storybook"])[0].success
    assert _status(engine, "unsafe-1") == ("needs_review", None)


def test_the_budget_stops_redraws(fake, resources, provider_env, instance, engine):
    _register(engine, "budget-1")
    text = ["structured_story", "visual_profile", "base_style", "scene_moments", "character_sheet"]
    assert materialize_stories(_defs(fake, resources), instance, ["budget-1"], assets=text)[
        0
    ].success
    spent = call_cache.story_spend(engine, "budget-1")
    prices = {
        CHAT_MODEL: {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        IMAGE_MODEL: {"per_image": 0.1},
    }
    provider_env.setenv("STORYGEN_MODEL_PRICES", json.dumps(prices))
    # Room for three pictures and their reviews, not for a fourth picture.
    provider_env.setenv("STORYGEN_MAX_COST_PER_STORY_USD", f"{spent + 0.35:.6f}")
    fake.reject(2, KITE)
    [outcome] = materialize_stories(_defs(fake, resources), instance, ["budget-1"])
    assert outcome.success
    assert len(_scene_draws(fake)) == 3
    evaluation = _evaluation(instance)
    assert not evaluation.passed and evaluation.metadata["redraws"].value["2"] == 0
    assert "redraw stopped by the budget" in evaluation.description


def test_the_offline_reviewer_redraws_a_picture_with_a_blank_quarter(
    fake, resources, provider_env, instance, engine
):
    from tests.fakes.offline_pictures import with_blank_quarter

    _register(engine, "offline-1")
    defs = build_definitions(
        {
            **resources,
            "llm": llm_resource(fake),
            "images": image_resource(fake),
            "reviewer": OfflinePictureReview(),
        }
    )
    text = ["structured_story", "visual_profile", "base_style", "scene_moments", "character_sheet"]
    assert materialize_stories(defs, instance, ["offline-1"], assets=text)[0].success
    fake.queue("images", {"png": with_blank_quarter(fake, "a blank corner")})
    [outcome] = materialize_stories(defs, instance, ["offline-1"], assets=["scene_images"])
    assert outcome.success
    draws = _scene_draws(fake)
    assert len(draws) == 4
    # The picture fails the offline checks (a blank quarter, another child, no friend): each
    # fix goes into the redraw's prompt.
    assert draws[-1]["prompt"].startswith("Important: fill the whole picture with the scene;")
    assert fake.reviews() == []  # no model: the offline checks
    evaluation = _evaluation(instance)
    assert evaluation.passed and sum(evaluation.metadata["redraws"].value.values()) == 1
    assert evaluation.metadata["reviewer"].value == "offline"
