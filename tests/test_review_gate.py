"""The review gate (issue 17): with STORYGEN_REVIEW=story (or a request's `review: true`) a
story stops after its text with status awaiting_review and no image call; a decision is an
audit row and a runless `approved` check evaluation; story_review_sensor turns approvals into
the picture + book run and rejections into a new text (the note in the prompt) with no run
launched by hand. Real Postgres, a real Dagster instance, the HTTP provider fake."""

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from storygen_dagster.defs.automation.review import story_review_sensor
from storygen_dagster.defs.automation.sensors import (
    story_request_sensor,
    story_run_succeeded_sensor,
)
from storygen_dagster.domain.ids import content_hash
from storygen_dagster.reviewing import decide
from storygen_dagster.storage import requests as queue
from storygen_dagster.storage import reviews

pytest_plugins = ["tests.fakes.fixtures"]  # fake, provider_env, real_resources

CHECK = dg.AssetCheckKey(dg.AssetKey("scene_moments"), "approved")


def _one(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def _calls(engine, sid, asset):
    return _one(
        engine,
        "select count(*) from provider_calls where story_id = :sid and asset = :asset",
        sid=sid,
        asset=asset,
    )


def _review_audit(engine, sid):
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select asset, field, scene_number, old_value_sha256, new_value_sha256, source,"
                " updated_by, run_id, note from audit_log"
                " where story_id = :sid and field = 'review' order by id"
            ),
            {"sid": sid},
        ).mappings()
        return [dict(r) for r in rows]


def _status(engine, sid):
    return _one(engine, "select status from stories where story_id = :sid", sid=sid)


def _execute(defs, instance, run_request):
    """What the daemon does with a sensor's run request (in process)."""
    job = defs.resolve_job_def("storybook_job")
    result = job.execute_in_process(
        instance=instance,
        partition_key=run_request.partition_key,
        tags=run_request.tags,
        asset_selection=run_request.asset_selection,
        raise_on_error=False,
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def _settle(instance, resources, result):
    kind = "PIPELINE_SUCCESS"
    event = next(e for e in result.all_events if e.event_type_value == kind)
    story_run_succeeded_sensor(
        dg.build_run_status_sensor_context(
            sensor_name="story_run_succeeded_sensor",
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            dagster_event=event,
            resources={"db": resources["db"]},
        )
    )


def _tick(sensor, instance, resources):
    return sensor(dg.build_sensor_context(instance=instance, resources={"db": resources["db"]}))


def _request_to_review(engine, instance, resources, defs, sid, payload):
    rid = queue.enqueue(engine, payload, story_id=sid, requested_by="parent")
    tick = _tick(story_request_sensor, instance, resources)
    instance.add_dynamic_partitions("stories", [sid])
    [run_request] = tick.run_requests
    _settle(instance, resources, _execute(defs, instance, run_request))
    return rid


def _check_passed(instance, sid) -> bool:
    """The latest evaluation of the story's `approved` check, as the UI shows it."""
    [record] = instance.event_log_storage.get_asset_check_execution_history(
        CHECK, limit=1, partition_filter=PartitionKeyFilter(key=sid)
    )
    return record.status == AssetCheckExecutionRecordStatus.SUCCEEDED


@pytest.fixture()
def gate_defs(real_resources, monkeypatch):
    from storygen_dagster.definitions import build_definitions

    monkeypatch.setenv("STORYGEN_REVIEW", "story")
    return build_definitions(real_resources)


def test_request_waits_for_review_without_image_calls_then_approval_makes_the_book(
    engine, instance, real_resources, gate_defs, fake
):
    rid = _request_to_review(
        engine, instance, real_resources, gate_defs, "gate-1", {"child_name": "Ana", "age": 4}
    )
    assert _status(engine, "gate-1") == "awaiting_review"
    assert _calls(engine, "gate-1", "structured_story") == 1
    assert _calls(engine, "gate-1", "scene_moments") >= 3
    assert _calls(engine, "gate-1", "scene_images") == 0 and fake.count("image") == 0
    assert {r["id"]: r for r in queue.request_rows(engine)}[rid]["status"] == "awaiting_review"
    # Held, not failed: no materialization (and no failure) of the picture assets.
    for key in ("scene_images", "storybook"):
        assert instance.get_latest_materialization_event(dg.AssetKey(key)) is None
    assert not _check_passed(instance, "gate-1")
    [waiting] = reviews.awaiting(engine)
    assert waiting["story_id"] == "gate-1" and len(waiting["scenes"]) >= 3

    decision = decide(engine, instance, "gate-1", "approved", "ruth", "lovely")
    assert decision.changed and decision.audit_id
    assert _check_passed(instance, "gate-1")
    again = decide(engine, instance, "gate-1", "approved", "ruth")
    assert not again.changed  # idempotent: no second audit row, no second evaluation

    # Nobody launches a run: the review sensor asks for pictures + book.
    tick = _tick(story_review_sensor, instance, real_resources)
    [run_request] = tick.run_requests
    assert run_request.run_key == "review-gate-1-round-1-approved"
    assert sorted(k.to_user_string() for k in run_request.asset_selection) == [
        "scene_images",
        "storybook",
    ]
    assert queue.request_rows(engine)[0]["status"] == "queued"
    result = _execute(gate_defs, instance, run_request)
    _settle(instance, real_resources, result)
    assert _status(engine, "gate-1") == "succeeded"
    assert _one(engine, "select book_uri from stories where story_id = 'gate-1'")
    assert _calls(engine, "gate-1", "scene_images") >= 3
    assert _calls(engine, "gate-1", "structured_story") == 1  # the text was not paid again
    assert queue.request_rows(engine)[0]["status"] == "succeeded"
    assert isinstance(_tick(story_review_sensor, instance, real_resources), dg.SkipReason)
    assert _review_audit(engine, "gate-1") == [
        {
            "asset": "scene_moments",
            "field": "review",
            "scene_number": None,
            "old_value_sha256": content_hash("awaiting"),
            "new_value_sha256": content_hash("approved"),
            "source": "user",
            "updated_by": "ruth",
            "run_id": None,
            "note": "lovely",
        }
    ]
