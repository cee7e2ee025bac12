"""The approval page (`storygen review serve`): a small Starlette app for reviewers who never
open the Dagster UI."""
