"""`storygen dev` as a child process for tests and measurements: its own session (so the test
can signal the whole group: webserver, daemon, code server, run workers), SIGINT back to the
default handler (a background shell may have handed it ignored), stdin closed (CI), a free
port, readiness from /server_info."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dev_env(database_url: str, home: Path, **settings: str) -> dict[str, str]:
    """The environment of a `storygen dev` child: none of this shell's STORYGEN_/DAGSTER_
    settings; the test's database, a home of its own, the sensor every 5 s, the test pictures'
    size (320x240), then `settings` (STORYGEN_... names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env.update(
        STORYGEN_DATABASE_URL=database_url,
        STORYGEN_HOME=str(home),
        STORYGEN_REQUEST_SENSOR_INTERVAL_S="5",
        STORYGEN_IMAGE_WIDTH="320",
        STORYGEN_IMAGE_HEIGHT="240",
    )
    env.update(settings)
    return env


def start_dev(env: dict[str, str], port: int, log) -> subprocess.Popen:
    def child_setup():
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(
        [sys.executable, "-m", "storygen_dagster.cli", "dev", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=child_setup,  # noqa: PLW1509 - only a preexec_fn can reset SIGINT
    )


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"storygen dev exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


def stop(proc: subprocess.Popen, grace: float = 15) -> None:
    """Ctrl-C to the group (dagster dev ignores SIGTERM), SIGKILL after a grace period; then
    the rest of the group. dagster dev can exit before its children: a code server waiting on
    a child of its own outlived its test by 45 minutes (seen 2026-12-03)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    deadline = time.monotonic() + grace
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_members(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def hard_kill(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGKILL the whole group (as `kill -9 -PGID` would) and wait until none of it runs."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while group_members(proc.pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"process group {proc.pid} still alive after SIGKILL")
        time.sleep(0.1)
