"""The story checks as Dagster sees them: one partitioned spec per engine check (every story
gets its own evaluation in every run), and the engine's per-story outcome as an
`AssetCheckEvaluation` for that story's partition.

`AssetCheckResult` has no partition: in a range run it became one unpartitioned row while the
per-story rows Dagster planned ended SKIPPED. `AssetCheckEvaluation(partition=...)` is exported
by dagster 1.13 but not @public (hence the exact pin; tests/test_checks_per_story.py catches a
change). Evaluations are reported non-blocking: a blocking failure fails the whole step, every
story of the range; the engine holds the failing story itself."""

import dagster as dg

from storygen_dagster.defs.partitions import story_partitions
from storygen_dagster.defs.story.metadata import fact_value
from storygen_dagster.engine.outcomes import CheckOutcome
from storygen_dagster.engine.vocabulary import CHECKS, CheckDef


def _severity(check: CheckDef) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.WARN if check.warn else dg.AssetCheckSeverity.ERROR


CHECK_SPECS = [
    dg.AssetCheckSpec(
        c.name,
        asset=dg.AssetKey(c.asset),
        blocking=c.blocking,
        description=c.description,
        partitions_def=story_partitions,
    )
    for c in CHECKS
]
_BY_KEY = {(c.asset, c.name): c for c in CHECKS}


def selected_checks(context: dg.AssetExecutionContext) -> frozenset[tuple[str, str]]:
    return frozenset(
        (k.asset_key.to_user_string(), k.name) for k in context.selected_asset_check_keys
    )


def evaluation(outcome: CheckOutcome) -> dg.AssetCheckEvaluation:
    check = _BY_KEY[(outcome.asset, outcome.check)]
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(outcome.asset),
        check_name=outcome.check,
        passed=outcome.passed,
        partition=outcome.story_id,
        severity=_severity(check),
        description="; ".join(outcome.problems)[:1000] or None,
        metadata={
            "story_id": dg.MetadataValue.text(outcome.story_id),
            "problems": dg.MetadataValue.json(outcome.problems),
            **{k: fact_value(v) for k, v in outcome.facts.items()},
        },
    )
