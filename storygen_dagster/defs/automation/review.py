"""story_review_sensor: a reviewer's decision becomes a run with nobody launching it by hand.
Approved stories get their pictures and book (character_sheet + scene_images + storybook);
rejected ones get their text written again with the note (structured_story ..
scene_moments), which ends back in review. The decision itself is reported to Dagster when it
is made (`report_decision`), as an evaluation of the story's `approved` check on scene_moments
(in a one-op run, see why there).

A sensor on the decisions table rather than Declarative Automation: a runless check
evaluation unlocks `all_deps_blocking_checks_passed()` only when it names its target
materialization (an internal type), and a request per decision is what the request sensor
already does."""

import dagster as dg

from storygen_dagster.defs.automation.launches import RUN_KEY_TAG, request_run_tags
from storygen_dagster.defs.jobs import storybook_job
from storygen_dagster.defs.resources import StoryDatabase
from storygen_dagster.defs.runner import console_config
from storygen_dagster.defs.story.keys import (
    BOOK,
    EPUB,
    IMAGES,
    MOMENTS,
    PDF,
    SHEET,
    STRUCTURED,
    STYLE,
    VISUAL,
)
from storygen_dagster.settings import get_settings
from storygen_dagster.storage import requests as queue
from storygen_dagster.storage import reviews
from storygen_dagster.storage.reviews import REVIEW_ASSET, Decision

REVIEW_TAG = "storygen/review"
AFTER = {
    "approved": [SHEET, IMAGES, BOOK, PDF, EPUB],
    "rejected": [STRUCTURED, VISUAL, STYLE, MOMENTS],
}

_settings = get_settings()


def review_run_key(story_id: str, state: str, round_: int) -> str:
    return f"review-{story_id}-round-{round_}-{state}"


@dg.sensor(
    job=storybook_job,
    minimum_interval_seconds=_settings.request_sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Review decisions → runs: approved stories get pictures and a book, rejected "
    "ones a new text (with the reviewer's note), then review again.",
)
def story_review_sensor(context: dg.SensorEvaluationContext, db: StoryDatabase):
    engine = db.engine()
    run_requests, launches = [], []
    for sid, state, round_ in reviews.to_launch(engine):
        run_key = review_run_key(sid, state, round_)
        run_requests.append(
            dg.RunRequest(
                run_key=run_key,
                partition_key=sid,
                asset_selection=AFTER[state],
                tags={
                    RUN_KEY_TAG: run_key,
                    REVIEW_TAG: state,
                    "storygen/source": "review",
                    **request_run_tags(),
                },
            )
        )
        launches += [(rid, sid, run_key) for rid in reviews.mark_launched(engine, sid, run_key)]
    queue.mark_queued(engine, launches, from_statuses=("awaiting_review",))
    if not run_requests:
        return dg.SkipReason("no review decision waits for a run")
    return dg.SensorResult(run_requests=run_requests)


def decision_evaluation(decision: Decision) -> dg.AssetCheckEvaluation:
    """The decision as the story's evaluation of `approved` (scene_moments, its partition)."""
    approved = decision.decision == "approved"
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(REVIEW_ASSET),
        check_name="approved",
        passed=approved,
        partition=decision.story_id,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if approved
        else f"rejected by {decision.by}: {decision.note or ''}"[:1000],
        metadata={
            "story_id": dg.MetadataValue.text(decision.story_id),
            "decision": dg.MetadataValue.text(decision.decision),
            "by": dg.MetadataValue.text(decision.by),
            "note": dg.MetadataValue.text(decision.note or ""),
            "round": dg.MetadataValue.int(decision.round),
            "audit_id": dg.MetadataValue.int(decision.audit_id or 0),
        },
    )


@dg.op(
    config_schema={
        "story_id": str,
        "decision": str,
        "by": str,
        "note": dg.Field(str, is_required=False, default_value=""),
        "round": int,
        "audit_id": int,
    },
    description="Records a reviewer's decision as the story's `approved` check evaluation.",
)
def record_review_decision(context: dg.OpExecutionContext):
    c = context.op_config
    yield decision_evaluation(
        Decision(
            c["story_id"],
            c["decision"],
            c["by"],
            c["note"] or None,
            c["round"],
            True,
            c["audit_id"],
        )
    )
    yield dg.Output(None)


@dg.job(
    description="One reviewer decision (storygen approve/reject, the review page): the story's "
    "approved check evaluation, with its own run so every decision is kept.",
    tags={"storygen/pipeline": "review"},
)
def review_decision_job():
    record_review_decision()


def report_decision(instance: dg.DagsterInstance, decision: Decision) -> str:
    """Write the decision to the instance now, as the story's `approved` evaluation; returns
    the run id. A run of its own rather than `report_runless_asset_event`: in dagster 1.13.27
    runless evaluations all have run_id '' and the unique index of asset_check_executions
    (asset_key, check_name, run_id, partition) refuses a story's second one (a rejection, then
    the approval), measured in tests/test_review_gate.py."""
    config = {
        "story_id": decision.story_id,
        "decision": decision.decision,
        "by": decision.by,
        "note": decision.note or "",
        "round": decision.round,
        "audit_id": decision.audit_id or 0,
    }
    result = review_decision_job.execute_in_process(
        instance=instance,
        run_config={
            "ops": {"record_review_decision": {"config": config}},
            **console_config("CRITICAL"),
        },
        tags={
            "storygen/story": decision.story_id,
            REVIEW_TAG: decision.decision,
            "storygen/reviewer": decision.by[:200],
        },
    )
    return result.run_id
