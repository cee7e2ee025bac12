"""story_review_sensor: a reviewer's decision becomes a run with nobody launching it by hand.
Approved stories get their pictures and book (scene_images + storybook); rejected ones get
their text written again with the note (structured_story .. scene_moments), which ends back
in review. The decision itself is reported to Dagster when it is made (`report_decision`),
as a runless evaluation of the story's `approved` check on scene_moments.

A sensor on the decisions table rather than Declarative Automation: a runless check
evaluation unlocks `all_deps_blocking_checks_passed()` only when it names its target
materialization (an internal type), and a request per decision is what the request sensor
already does."""

import dagster as dg

from storygen_dagster.defs.automation.launches import RUN_KEY_TAG, request_run_tags
from storygen_dagster.defs.jobs import storybook_job
from storygen_dagster.defs.resources import StoryDatabase
from storygen_dagster.defs.story.keys import BOOK, IMAGES, MOMENTS, STRUCTURED, STYLE, VISUAL
from storygen_dagster.settings import get_settings
from storygen_dagster.storage import requests as queue
from storygen_dagster.storage import reviews
from storygen_dagster.storage.reviews import REVIEW_ASSET, Decision

REVIEW_TAG = "storygen/review"
AFTER = {
    "approved": [IMAGES, BOOK],
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


def report_decision(instance: dg.DagsterInstance, decision: Decision) -> None:
    """Write the decision to the instance now (no run): it shows per story in the UI."""
    instance.report_runless_asset_event(decision_evaluation(decision))
