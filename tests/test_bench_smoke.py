"""The benchmark's quick mode runs end to end and prints parseable JSON lines (no timing checks:
the machine is shared and timings are noise here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_prints_json_lines():
    env = {k: v for k, v in os.environ.items() if k != "STORYGEN_DATABASE_URL"}
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    figures = {r["figure"] for r in rows}
    assert {"single_story", "batch", "peak_rss"} <= figures
    assert all(r.get("ok", True) for r in rows)
