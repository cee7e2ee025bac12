"""The review gate (issue 17): with STORYGEN_REVIEW=story (or a request's `review: true`) a
story stops after its text with status awaiting_review and no image call; a decision is an
audit row and a runless `approved` check evaluation; story_review_sensor turns approvals into
the picture + book run and rejections into a new text (the note in the prompt) with no run
launched by hand. Real Postgres, a real Dagster instance, the HTTP provider fake."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from storygen_dagster.cli import main
from storygen_dagster.defs.automation.review import story_review_sensor
from storygen_dagster.defs.automation.schedules import nightly_stories
from storygen_dagster.defs.automation.sensors import (
    story_request_sensor,
    story_run_succeeded_sensor,
)
from storygen_dagster.domain.ids import content_hash
from storygen_dagster.domain.models import StoryRequest
from storygen_dagster.logs import detach_handlers
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.reviewing import decide, edit_in_review
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage import requests as queue
from storygen_dagster.storage import reviews
from storygen_dagster.storage.reviews import ReviewError
from storygen_dagster.storage.writes import StoryNotFound

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
    assert _calls(engine, "gate-1", "scene_images") == 0 and fake.count("images") == 0
    assert _calls(engine, "gate-1", "character_sheet") == 0  # the sheet is a picture too
    assert {r["id"]: r for r in queue.request_rows(engine)}[rid]["status"] == "awaiting_review"
    # Held, not failed: no materialization (and no failure) of the picture assets.
    for key in ("character_sheet", "scene_images", "storybook"):
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
        "character_sheet",
        "scene_images",
        "storybook",
        "storybook_epub",
        "storybook_pdf",
    ]
    assert queue.request_rows(engine)[0]["status"] == "queued"
    result = _execute(gate_defs, instance, run_request)
    _settle(instance, real_resources, result)
    assert _status(engine, "gate-1") == "succeeded"
    assert _one(engine, "select book_uri from stories where story_id = 'gate-1'")
    assert _calls(engine, "gate-1", "scene_images") >= 3
    assert _calls(engine, "gate-1", "character_sheet") == 1
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


def test_nightly_schedule_runs_stop_at_review_without_image_calls(
    engine, instance, real_resources, gate_defs, fake, monkeypatch
):
    """The nightly schedule respects the gate as the request sensor does: its range run (what
    the daemon launches from the tick's run request) leaves every story awaiting review, with
    no image call, nothing failed, and no run for the review sensor to launch yet."""
    monkeypatch.setenv("STORYGEN_STORIES_PER_RUN", "5")  # both stories in one range run
    sids = ["night-a", "night-b"]
    rids = [
        queue.enqueue(engine, {"child_name": name, "age": 5}, story_id=sid, requested_by="p")
        for sid, name in zip(sids, ("Ana", "Ben"), strict=True)
    ]
    when = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources={"db": real_resources["db"]},
    ) as ctx:
        [run_request] = nightly_stories(ctx)
    assert run_request.tags["storygen/source"] == "nightly"
    _settle(instance, real_resources, _execute(gate_defs, instance, run_request))
    rows = {r["id"]: r for r in queue.request_rows(engine)}
    for sid, rid in zip(sids, rids, strict=True):
        assert _status(engine, sid) == "awaiting_review"
        assert rows[rid]["status"] == "awaiting_review"
        assert _calls(engine, sid, "structured_story") == 1
        assert _calls(engine, sid, "scene_images") == 0
        assert _calls(engine, sid, "character_sheet") == 0
        assert not _check_passed(instance, sid)
    assert fake.count("images") == 0
    for key in ("character_sheet", "scene_images", "storybook", "storybook_pdf"):
        assert instance.get_latest_materialization_event(dg.AssetKey(key)) is None
    assert {r["story_id"] for r in reviews.awaiting(engine)} == set(sids)
    assert isinstance(_tick(story_review_sensor, instance, real_resources), dg.SkipReason)


def _prompts(fake) -> list[str]:
    return [json.dumps(s.body) for s in fake.seen if s.kind == "chat"]


def test_reject_writes_the_text_again_with_the_note_then_approval_makes_the_book(
    engine, instance, real_resources, fake
):
    from storygen_dagster.definitions import build_definitions

    defs = build_definitions(real_resources)  # STORYGEN_REVIEW=none: the request asks for review
    payload = {"child_name": "Ben", "age": 5, "scene_count": 3, "review": True}
    rid = _request_to_review(engine, instance, real_resources, defs, "gate-2", payload)
    assert _status(engine, "gate-2") == "awaiting_review"
    first_text = _scene_texts(engine, "gate-2")
    note = "Please make the side character a friendly hedgehog"
    made = decide(engine, instance, "gate-2", "rejected", "ruth", note)
    assert made.changed and not _check_passed(instance, "gate-2")
    with pytest.raises(ReviewError, match="not awaiting review"):
        decide(engine, instance, "gate-2", "approved", "ruth")  # the new text is not here yet

    [run_request] = _tick(story_review_sensor, instance, real_resources).run_requests
    assert run_request.run_key == "review-gate-2-round-1-rejected"
    assert sorted(k.to_user_string() for k in run_request.asset_selection) == [
        "base_style",
        "scene_moments",
        "structured_story",
        "visual_profile",
    ]
    _settle(instance, real_resources, _execute(defs, instance, run_request))
    # The note reached the model in the versioned revision prompt, paid once, in the ledger.
    revisions = [p for p in _prompts(fake) if "Reviewer's note" in p]
    assert len(revisions) == 1 and note in revisions[0]
    assert _calls(engine, "gate-2", "structured_story") == 2
    assert (
        _one(
            engine,
            "select prompt_version from stories where story_id = 'gate-2'",
        )
        == "v1"
    )
    assert _scene_texts(engine, "gate-2") != first_text
    assert _status(engine, "gate-2") == "awaiting_review"
    assert reviews.state(engine, "gate-2")["round"] == 2
    assert queue.request_rows(engine)[0]["status"] == "awaiting_review"
    assert _calls(engine, "gate-2", "scene_images") == 0

    decide(engine, instance, "gate-2", "approved", "sam")
    assert _check_passed(instance, "gate-2")  # the story's second decision is kept too
    [run_request] = _tick(story_review_sensor, instance, real_resources).run_requests
    assert run_request.run_key == "review-gate-2-round-2-approved"
    _settle(instance, real_resources, _execute(defs, instance, run_request))
    assert _status(engine, "gate-2") == "succeeded"
    assert {r["id"]: r for r in queue.request_rows(engine)}[rid]["status"] == "succeeded"
    audit = _review_audit(engine, "gate-2")
    assert [(a["new_value_sha256"], a["updated_by"], a["note"]) for a in audit] == [
        (content_hash("rejected"), "ruth", note),
        (content_hash("approved"), "sam", None),
    ]


def _scene_texts(engine, sid):
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.text("select text from scenes where story_id = :sid order by scene_number"),
                {"sid": sid},
            )
            .scalars()
            .all()
        )


@pytest.fixture()
def offline_gate(resources, monkeypatch):
    from storygen_dagster.definitions import build_definitions

    monkeypatch.setenv("STORYGEN_REVIEW", "story")
    return build_definitions(resources)


def _generate(engine, instance, defs, *requests):
    for request in requests:
        repo.register_request(engine, request.story_id, request, by="test")
    return materialize_stories(defs, instance, [r.story_id for r in requests])


def test_edit_while_in_review_then_approve_keeps_the_edit_in_the_book(
    engine, instance, resources, offline_gate, object_root
):
    [outcome] = _generate(
        engine, instance, offline_gate, StoryRequest(story_id="gate-3", age=4, scene_count=3)
    )
    assert outcome.success and _status(engine, "gate-3") == "awaiting_review"
    edited = "Mia shares her red umbrella with the shivering hedgehog."
    changes = edit_in_review(engine, instance, "gate-3", "ruth", scene_number=2, text=edited)
    assert [(c["asset"], c["field"], c["scene_number"]) for c in changes] == [
        ("structured_story", "text", 2)
    ]
    decide(engine, instance, "gate-3", "approved", "ruth")
    [run_request] = _tick(story_review_sensor, instance, resources).run_requests
    _execute(offline_gate, instance, run_request)
    assert _status(engine, "gate-3") == "succeeded"
    assert _scene_texts(engine, "gate-3")[1] == edited
    book = _one(engine, "select book_uri from stories where story_id = 'gate-3'")
    assert edited in Path(book).read_text()


def test_a_batch_holds_only_the_story_under_review_and_nothing_is_failed(
    engine, instance, test_defs
):
    # STORYGEN_REVIEW=none: one request asks for review, the other does not (a range run, as
    # the nightly schedule and an analyst's backfill launch them).
    outcomes = _generate(
        engine,
        instance,
        test_defs,
        StoryRequest(story_id="batch-a", age=4, review=True),
        StoryRequest(story_id="batch-b", age=5),
    )
    assert [o.success for o in outcomes] == [True]
    assert _status(engine, "batch-a") == "awaiting_review"
    assert _status(engine, "batch-b") == "succeeded"
    for key in ("character_sheet", "scene_images", "storybook"):
        assert instance.get_materialized_partitions(dg.AssetKey(key)) == {"batch-b"}
    assert not _one(
        engine, "select count(*) from scenes where story_id = 'batch-a' and image_uri is not null"
    )
    assert not _check_passed(instance, "batch-a") and _check_passed(instance, "batch-b")
    # A later full re-run of the held story (a backfill) still makes no picture.
    [again] = materialize_stories(test_defs, instance, ["batch-a"])
    assert again.success and _status(engine, "batch-a") == "awaiting_review"


def test_an_approved_story_whose_text_a_rerun_changes_goes_back_to_review(
    engine, instance, resources, offline_gate
):
    _generate(engine, instance, offline_gate, StoryRequest(story_id="again-1", scene_count=3))
    decide(engine, instance, "again-1", "approved", "ruth")
    [run_request] = _tick(story_review_sensor, instance, resources).run_requests
    _execute(offline_gate, instance, run_request)
    assert _status(engine, "again-1") == "succeeded"
    images = instance.get_latest_materialization_event(dg.AssetKey("scene_images"))
    # The same text again (a cached re-run): the approval stands, the book is made again.
    [same] = materialize_stories(offline_gate, instance, ["again-1"])
    assert same.success and _status(engine, "again-1") == "succeeded"
    # A new text (the request changed): what the reviewer approved is gone, so it waits again.
    request = StoryRequest(story_id="again-1", scene_count=3, child_name="Noor")
    [changed] = _generate(engine, instance, offline_gate, request)
    assert changed.success and _status(engine, "again-1") == "awaiting_review"
    assert reviews.state(engine, "again-1")["state"] == "awaiting"
    assert reviews.state(engine, "again-1")["round"] == 2
    latest = instance.get_latest_materialization_event(dg.AssetKey("scene_images"))
    assert latest.run_id == same.run_id != images.run_id  # no picture for the new text


def test_decisions_on_unknown_or_undecidable_stories_fail_and_change_nothing(
    engine, instance, test_defs
):
    _generate(engine, instance, test_defs, StoryRequest(story_id="plain-1", age=4))
    _generate(engine, instance, test_defs, StoryRequest(story_id="held-1", age=4, review=True))
    before = _one(engine, "select count(*) from audit_log")
    with pytest.raises(StoryNotFound, match="nope-1"):
        decide(engine, instance, "nope-1", "approved", "ruth")
    with pytest.raises(ReviewError, match="plain-1 is not awaiting review"):
        decide(engine, instance, "plain-1", "approved", "ruth")
    with pytest.raises(ReviewError, match="needs a note"):
        decide(engine, instance, "held-1", "rejected", "ruth", "  ")
    with pytest.raises(ReviewError, match="reviewer name"):
        decide(engine, instance, "held-1", "approved", " ")
    with pytest.raises(ReviewError, match="at most 2000"):
        decide(engine, instance, "held-1", "approved", "ruth", "x" * 2001)
    decide(engine, instance, "held-1", "approved", "ruth")
    with pytest.raises(ReviewError, match="held-1 is not awaiting review \\(approved\\)"):
        decide(engine, instance, "held-1", "rejected", "ruth", "too late")
    assert _one(engine, "select count(*) from audit_log") == before + 1
    assert _status(engine, "plain-1") == "succeeded"


def test_dagster_keeps_only_one_runless_check_evaluation_per_partition(instance):
    """Why decisions are recorded by a one-op run (report_decision): a story's second runless
    evaluation of a check is refused by asset_check_executions' unique index in dagster
    1.13.27. When this starts passing through, runless reports can replace the run."""
    instance.add_dynamic_partitions("stories", ["twice-1"])
    evaluation = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("scene_moments"),
        check_name="approved",
        passed=False,
        partition="twice-1",
    )
    instance.report_runless_asset_event(evaluation)
    with pytest.raises(sa.exc.IntegrityError):
        instance.report_runless_asset_event(evaluation)


@pytest.fixture()
def cli(tmp_path, database_url, monkeypatch):
    for name, value in {
        "STORYGEN_DATABASE_URL": database_url,
        "STORYGEN_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "STORYGEN_IMAGE_WIDTH": "320",
        "STORYGEN_IMAGE_HEIGHT": "240",
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster").mkdir()
    yield lambda *args: CliRunner().invoke(main, list(args))
    detach_handlers()


def test_cli_request_review_list_approve_and_audit(cli, engine, tmp_path):
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"story_id": "cli-1", "child_name": "Zoe", "scene_count": 3}))
    made = cli("request", "--file", str(request), "--review")
    assert made.exit_code == 0, made.output
    assert "1 awaiting review" in made.output and "0 failed" in made.output
    assert _status(engine, "cli-1") == "awaiting_review"
    listed = json.loads(cli("review", "list", "--json").stdout)
    assert [(r["story_id"], len(r["scenes"])) for r in listed] == [("cli-1", 3)]
    unknown = cli("approve", "nope-1", "--by", "ruth")
    assert unknown.exit_code == 1 and "story_id 'nope-1' not found" in unknown.output
    assert cli("reject", "cli-1", "--by", "ruth").exit_code == 2  # --note is required
    ok = cli("approve", "cli-1", "--by", "ruth", "--note", "ok")
    assert ok.exit_code == 0 and "cli-1: approved by ruth" in ok.output
    again = cli("approve", "cli-1", "--by", "ruth")
    assert again.exit_code == 0 and "already approved, nothing changed" in again.output
    late = cli("reject", "cli-1", "--by", "ruth", "--note", "no")
    assert late.exit_code == 1 and "not awaiting review (approved)" in late.output
    history = json.loads(cli("audit", "cli-1", "--json").stdout)
    decisions = [h for h in history if h["field"] == "review"]
    assert [(h["asset"], h["source"], h["updated_by"], h["note"]) for h in decisions] == [
        ("scene_moments", "user", "ruth", "ok")
    ]
    table = cli("audit", "cli-1").output
    assert "review" in table and "ok" in table.splitlines()[-1]
