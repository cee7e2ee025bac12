"""The fixed cost of a run: `storygen demo --stories N` as a user starts it (its own process),
against the loopback fake provider with latency L (default 0.5 s): seconds from the process
start to the fake's first request, the whole run, and the run's wall against the ideal
(calls x L / concurrency, at least 4 L for the chain of one story).

    STORYGEN_DATABASE_URL=postgresql://... python -m bench.first_call --stories 1,20,40

Each N gets a database of its own (no call cache hit). On a loaded machine wall times swing:
each row also has the demo's CPU seconds (to its first call, and in all), and `--baseline DIR
--baseline-python PY` runs another checkout (`git archive main | tar -x -C DIR`, with its own
venv) back to back with this one, `--repeat` times."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_OPEN_INSTANCE = "from storygen_dagster.cli_context import Context; Context().instance()"


def measure(
    stories: int,
    latency: float,
    database_url: str,
    concurrency: int = 16,
    limits: str = "shared",
    root: Path = ROOT,
    python: str = sys.executable,
) -> dict:
    from bench.fake_server import CHAT_MODEL, IMAGE_MODEL, KEY, PRICES
    from tests.fakes.provider_server import FakeProvider

    with FakeProvider(api_key=KEY) as fake:
        fake.delay_s, fake.reuse_images = latency, True
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
        env.update(
            STORYGEN_DATABASE_URL=database_url,
            STORYGEN_HOME=tempfile.mkdtemp(prefix="storygen-first-"),
            STORYGEN_LLM_PROVIDER="openai",
            STORYGEN_LLM_BASE_URL=fake.url,
            STORYGEN_LLM_API_KEY=KEY,
            STORYGEN_LLM_MODEL=CHAT_MODEL,
            STORYGEN_IMAGE_PROVIDER="together",
            STORYGEN_IMAGE_BASE_URL=fake.url,
            STORYGEN_IMAGE_API_KEY=KEY,
            STORYGEN_IMAGE_MODEL=IMAGE_MODEL,
            STORYGEN_VISION_MODEL="none",  # one reused picture: the review would redraw it
            STORYGEN_LLM_RPM="100000",
            STORYGEN_IMAGE_RPM="100000",
            STORYGEN_MAX_CONCURRENCY=str(concurrency),
            STORYGEN_LIMITS=limits,
            STORYGEN_MODEL_PRICES=json.dumps(PRICES),
        )
        # The first command on a new database creates our tables (`status`) and Dagster's (the
        # instance: `status` does not open it, and creating its tables took ~1.5 s of the first
        # demo's time to its first call): not the cost of a run.
        cli = console_script(root, python)
        subprocess.run([*cli, "status"], cwd=root, env=env, capture_output=True, check=True)
        subprocess.run(
            [python, "-c", _OPEN_INSTANCE],
            cwd=root,
            env=env,
            capture_output=True,
            check=True,
        )
        # The demo's CPU (user + sys, its own and its children's): wall swings with the load.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()  # CLOCK_MONOTONIC: the fake's clock too (same host)
        # Its output to files: a pipe nobody reads before the first call would stop a demo that
        # writes more than the pipe holds (64 KiB) before it.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            demo = subprocess.Popen(
                [*cli, "demo", "--stories", str(stories)],
                cwd=root,
                env=env,
                stdout=out,
                stderr=err,
                text=True,
            )
            cpu_to_first = _cpu_when(demo.pid, lambda: bool(fake.seen))
            demo.wait(timeout=1800)
            err.seek(0)
            stderr = err.read()
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times = sorted(s.at for s in fake.seen if s.kind in ("chat", "images"))
    if demo.returncode != 0 or not times:
        raise RuntimeError(f"demo failed ({demo.returncode}): {stderr[-2000:]}")
    calls = len(times)
    first, last = times[0] - started, times[-1] - started
    calls_span = last - first + latency
    ideal = max(4 * latency, calls * latency / concurrency)
    return {
        "stories": stories,
        "limits": limits,
        "calls": calls,
        "first_call_s": round(first, 2),
        "cpu_to_first_call_s": cpu_to_first,
        "wall_s": round(wall, 2),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
        "calls_span_s": round(calls_span, 2),
        "ideal_s": round(ideal, 2),
        "calls_vs_ideal": round(calls_span / ideal, 2),
        "wall_vs_ideal": round(wall / ideal, 2),
    }


def console_script(root: Path, python: str) -> list[str]:
    """The `storygen` command of the checkout at `root` as its console script runs it (the
    entry point in its pyproject.toml), with `python`: what a user starts."""
    import tomllib

    entry = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]["storygen"]
    module, function = entry.split(":")
    return [python, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


def _cpu_when(pid: int, happened, poll_s: float = 0.005) -> float | None:
    """The CPU seconds (user + sys) of process `pid` when `happened()` first holds, read from
    /proc (Linux): how much of the time to the first call is the demo's own work."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = None
    while not happened():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None  # ended before its first call
        cpu = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        time.sleep(poll_s)
    return None if cpu is None else round(cpu, 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.first_call")
    parser.add_argument("--stories", default="1,20,40")
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--limits", default="shared", help="comma list of shared,process")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each figure")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. `git archive main`): each run is paired with one of it",
    )
    parser.add_argument(
        "--baseline-python", default=sys.executable, help="the baseline's interpreter (its venv)"
    )
    args = parser.parse_args(argv)
    server = os.environ.get("STORYGEN_DATABASE_URL")
    if not server:
        parser.error("set STORYGEN_DATABASE_URL (a server: the bench makes its own databases)")
    from bench.shared_limits import scratch_database

    trees = {"this": (ROOT, sys.executable)}
    if args.baseline:
        trees["baseline"] = (args.baseline.resolve(), args.baseline_python)
    for n in (int(s) for s in args.stories.split(",")):
        for limits in args.limits.split(","):
            for _ in range(args.repeat):
                for tree, (root, python) in trees.items():  # back to back: the load drifts
                    with scratch_database(server) as url:
                        row = measure(n, args.latency, url, limits=limits, root=root, python=python)
                    sys.stdout.write(json.dumps({"figure": "first_call", "tree": tree, **row}))
                    sys.stdout.write("\n")
                    sys.stdout.flush()


if __name__ == "__main__":
    main()
