"""Check results found outside a story run (`storygen edit`'s up_to_date), written to the
instance in a one-op run of their own.

Not `instance.report_runless_asset_event`: in dagster 1.13.27 runless check evaluations all
have run_id '' and the unique index of asset_check_executions (asset_key, check_name, run_id,
partition) refuses a story's second one, so the second edit of a story failed with an
IntegrityError (tests/test_edit_audit.py). A run per report keeps every evaluation, like the
review decisions (defs/automation/review.py)."""

from collections.abc import Sequence

import dagster as dg

from storygen_dagster.defs.runner import console_config
from storygen_dagster.defs.story.checks import evaluation
from storygen_dagster.engine.outcomes import CheckOutcome


@dg.op(
    config_schema={"outcomes": [dg.Permissive()]},
    description="Records check results found outside a story run (e.g. after an edit).",
)
def record_check_outcomes(context: dg.OpExecutionContext):
    for raw in context.op_config["outcomes"]:
        yield evaluation(
            CheckOutcome(raw["story_id"], raw["asset"], raw["check"], list(raw["problems"]))
        )
    yield dg.Output(None)


@dg.job(
    description="Check results found outside a story run (storygen edit's up_to_date), one run "
    "per report so every evaluation is kept.",
    tags={"storygen/pipeline": "checks"},
)
def check_report_job():
    record_check_outcomes()


def report_check_outcomes(
    instance: dg.DagsterInstance, outcomes: Sequence[CheckOutcome], tags: dict[str, str]
) -> str | None:
    """Write `outcomes` to the instance as check evaluations now; the run id, or None when
    there is nothing to report."""
    if not outcomes:
        return None
    config = [
        {"story_id": o.story_id, "asset": o.asset, "check": o.check, "problems": o.problems}
        for o in outcomes
    ]
    result = check_report_job.execute_in_process(
        instance=instance,
        run_config={
            "ops": {"record_check_outcomes": {"config": {"outcomes": config}}},
            **console_config("CRITICAL"),
        },
        tags=tags,
    )
    return result.run_id
