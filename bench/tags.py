"""Run tags the bench sets."""

from storygen_dagster.defs.runner import FRESH_TAG

# What `storygen run --fresh` sets: every call reaches the provider, none is answered from
# the cache (the fake's canned replies repeat across stories).
FRESH = {FRESH_TAG: "true"}
