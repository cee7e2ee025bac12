"""The story engine as plain code: one module per stage, a typed bundle of dependencies, plain
outcomes reported to a `Reporter`, a typed stage error. No Dagster import: the adapter in
defs/story/assets.py turns outcomes into materializations, check evaluations and the final
failure."""

from storygen_dagster.engine.deps import RunOptions, StoryDeps
from storygen_dagster.engine.outcomes import Built, CheckOutcome, Reporter, StageError
from storygen_dagster.engine.runner import StoryEngine

__all__ = [
    "Built",
    "CheckOutcome",
    "Reporter",
    "RunOptions",
    "StageError",
    "StoryDeps",
    "StoryEngine",
]
