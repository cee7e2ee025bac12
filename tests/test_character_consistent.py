"""character_consistent with a vision model (issue 15 item 5): the check reports the vision
review's `child_matches_card` verdict on the picture each scene holds now, read from the stored
review (no second call), with its reason and who judged, against the loopback fake."""

import dagster as dg

from storygen_dagster.definitions import build_definitions
from storygen_dagster.defs.reviewer import VisionModelReview
from storygen_dagster.defs.story.assets import story_assets
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.storage import repository as repo
from tests.fakes.helpers import CHAT_MODEL, KEY, image_resource, llm_resource

pytest_plugins = ["tests.fakes.fixtures"]

KONTEXT = "black-forest-labs/FLUX.1-kontext-pro"
CONSISTENT = dg.AssetCheckKey(dg.AssetKey("scene_images"), "character_consistent")
JUDGE = f"openai/{CHAT_MODEL}"
WRONG = "the child's hair is short and black; the sheet's is long and red"
NOT_THE_CHILD = {"fail": {"child_matches_card": WRONG}, "fix": "long red hair, as on the sheet"}


def _defs(fake, resources):
    vision = VisionModelReview(model=CHAT_MODEL, base_url=fake.url, api_key=KEY, max_redraws=1)
    images = image_resource(fake, model=KONTEXT)
    return build_definitions(
        {**resources, "llm": llm_resource(fake), "images": images, "reviewer": vision}
    )


def _story(engine, sid):
    request = StoryRequest(story_id=sid, child_name="Maya", scene_count=3)
    repo.register_request(engine, sid, request, by="test")


def _consistent(instance):
    found = instance.event_log_storage.get_latest_asset_check_execution_by_key([CONSISTENT])
    return found[CONSISTENT].evaluation


def _checks_alone(instance, defs, sid):
    """The story's checks on what is stored (no asset selected)."""
    job = defs.resolve_job_def("storybook_job").get_subset(
        asset_check_selection={s.key for s in story_assets.check_specs}
    )
    result = job.execute_in_process(instance=instance, partition_key=sid, raise_on_error=False)
    [found] = [e for e in result.get_asset_check_evaluations() if e.check_name == CONSISTENT.name]
    return found


def test_the_vision_models_failed_likeness_warns_naming_the_scene_and_its_reason(
    fake, resources, provider_env, instance, engine
):
    _story(engine, "judged-1")
    fake.reject(2, NOT_THE_CHILD, NOT_THE_CHILD)  # the picture and its one redraw
    defs = _defs(fake, resources)
    assert materialize_stories(defs, instance, ["judged-1"])[0].success
    assert len(fake.reviews()) == 4  # one per picture drawn: the check asked for none
    evaluation = _consistent(instance)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description == f"scene 2: {JUDGE} says the child does not match: {WRONG}"
    scenes = evaluation.metadata["scenes"].value
    assert scenes["2"] == {"passed": False, "reason": WRONG, "measured_by": JUDGE}
    assert scenes["1"]["passed"] and scenes["3"]["measured_by"] == JUDGE
    assert evaluation.metadata["not_measured"].value == []
    # Checked again on the stored values: the same verdict, and still no call.
    seen = fake.count()
    again = _checks_alone(instance, defs, "judged-1")
    assert not again.passed and again.metadata["scenes"].value == scenes
    assert fake.count() == seen


def test_the_vision_models_verdict_on_the_redrawn_picture_is_the_one_reported(
    fake, resources, provider_env, instance, engine
):
    _story(engine, "judged-2")
    fake.reject(3, NOT_THE_CHILD)  # the first picture fails, its redraw passes
    assert materialize_stories(_defs(fake, resources), instance, ["judged-2"])[0].success
    evaluation = _consistent(instance)
    assert evaluation.passed
    scenes = evaluation.metadata["scenes"].value
    assert set(scenes) == {"1", "2", "3"}
    assert all(s["passed"] and s["measured_by"] == JUDGE for s in scenes.values())
    assert WRONG not in scenes["3"]["reason"]
    assert evaluation.metadata["measured_by"].value == JUDGE
