"""The `storygen` command (and `python -m storygen_dagster`): the CLI, imported with the cyclic
garbage collector paused.

Start-up builds ~200,000 objects that live as long as the process (Dagster's, SQLAlchemy's and
pydantic's classes, schemas and definitions) and almost no garbage. With the collector on, it
walked them 4 times in full and ~45 times in part before a 1-story demo's first provider call.
Paused for the imports and then frozen (moved out of every generation, never scanned again), they
cost nothing more; the collector is back on for everything the command then does.
`python -m bench.first_call` measures the effect (docs/performance.md)."""

from __future__ import annotations

import gc


def main() -> None:
    gc.disable()
    try:
        from storygen_dagster.cli import main as cli
    finally:
        gc.freeze()
        gc.enable()
    cli()


if __name__ == "__main__":
    main()
