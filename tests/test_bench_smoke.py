"""The benchmark's quick mode runs end to end and prints parseable JSON lines with the expected
keys and sane values. No timing checks: the machine is shared and timings are noise here."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KEYS = {
    "single_story": {"providers", "wall_s", "baseline_s", "ratio", "critical_path_s", "steps_s"},
    "batch": {"stories", "calls", "wall_s", "baseline_s", "ratio", "ideal_s", "steps_s"},
    "event_log": {"rows_per_story", "bytes_per_story"},
    "providers": {"fake_chat_requests", "fake_image_requests", "pipeline_calls", "baseline_calls"},
    "db_upserts": {
        "rows",
        "batched_rows_per_s",
        "per_story_rows_per_s",
        "row_by_row_rows_per_s",
        "ratio_batched_vs_row",
        "batched",
        "row_by_row",
    },
    "partitions_10k": {
        "partitions",
        "sensor_tick_s",
        "status_s",
        "ui_partition_keys_s",
        "ui_materialized_s",
        "sensor_tick_ratio",
        "baseline",
    },
    "naive_dagster": {"measured_on_stories", "per_story_s", "range_run_s", "ratio"},
    "peak_rss": {"end_mib"},
}


def _bench(*args: str) -> tuple[dict[str, dict], str]:
    # The bench starts its own embedded database; a shared server is never written to.
    env = {
        k: v for k, v in os.environ.items() if k not in ("STORYGEN_DATABASE_URL", "DAGSTER_HOME")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    by_name = {r["figure"]: r for r in rows}
    assert len(by_name) == len(rows), "one line per figure"
    for name, row in by_name.items():
        assert KEYS[name] <= row.keys(), (name, KEYS[name] - row.keys())
        assert row.get("ok", True) is True, row
    return by_name, out


def test_bench_quick_prints_every_figure():
    rows, out = _bench()
    assert set(rows) == set(KEYS) - {"naive_dagster"}  # --naive is opt-in
    single, batch = rows["single_story"], rows["batch"]
    assert single["providers"] == batch["providers"] == "http"
    for row in (single, batch):
        assert row["wall_s"] > 0 and row["baseline_s"] > 0 and row["ratio"] > 0
        assert row["steps_s"].keys() == {"story_assets"}  # one step runs every asset
    assert batch["stories"] == 3 and batch["calls"] >= 3 * 3 + 2 * 3 * 3
    # Every pipeline call and every baseline call reached the fake provider over HTTP.
    providers = rows["providers"]
    seen = providers["fake_chat_requests"] + providers["fake_image_requests"]
    assert seen == providers["pipeline_calls"] + providers["baseline_calls"] > 0
    assert providers["pipeline_calls"] > batch["calls"]  # single story + batch

    upserts = rows["db_upserts"]
    assert upserts["rows"] == 25 * 4
    for mode in ("batched", "per_story", "row_by_row"):
        assert upserts[mode]["rows"] == 100 and upserts[mode]["rows_per_s"] > 0
    for mode in ("per_story", "row_by_row"):
        assert upserts[mode]["audit_insert_n"] > 0  # the breakdown saw the audit rows
    # 100 rows in one call take the COPY path: one INSERT ... SELECT, audit rows by COPY.
    assert upserts["batched"]["scene_upsert_n"] == 1
    assert "audit_insert_n" not in upserts["batched"]
    assert upserts["batched"]["calls"] == 1 and upserts["row_by_row"]["calls"] == 100
    assert upserts["ratio_batched_vs_row"] > 0

    parts = rows["partitions_10k"]
    assert parts["partitions"] >= 300 and parts["materialized"] >= 20
    assert parts["baseline"]["partitions"] < parts["partitions"]
    assert all(
        parts[k] > 0
        for k in ("sensor_tick_s", "status_s", "ui_partition_keys_s", "ui_partition_status_s")
    )
    assert rows["peak_rss"]["end_mib"] > 0
    assert "\nfigure " in out  # the table at the end


def test_bench_offline_providers():
    # naive_dagster (--naive N) is left out: one multiprocess run costs a minute on this machine.
    rows, _ = _bench("--providers", "offline", "--only", "single_story")
    assert set(rows) == {"single_story", "peak_rss"}  # no fake, so no providers figure
    single = rows["single_story"]
    assert single["providers"] == "offline" and single["wall_s"] > single["baseline_s"] > 0
