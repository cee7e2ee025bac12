"""Run tags the bench sets."""

try:  # the tag `storygen run --fresh` sets: every call reaches the provider, none is cached
    from storygen_dagster.defs.runner import FRESH_TAG
except ImportError:  # moved by a refactor: the value is what the runs read
    FRESH_TAG = "storygen/fresh"

FRESH = {FRESH_TAG: "true"}
