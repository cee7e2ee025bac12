"""Per-test CPU, for finding where the suite's time goes (issue 13).

`STORYGEN_TEST_CPU=FILE pytest ...` appends one JSON line per test phase to FILE: the test id,
the phase (setup, call, teardown), wall seconds, and the CPU seconds of the pytest process (or
xdist worker) and of the child processes it waited for in that phase. A `storygen dev` whose
processes outlive the test are counted when they are reaped. Off when the variable is unset.
"""

import json
import os
import resource
import time

import pytest

_PATH = os.environ.get("STORYGEN_TEST_CPU")


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _record(item: pytest.Item, phase: str, wall: float, own: float, children: float) -> None:
    line = {"test": item.nodeid, "phase": phase, "wall": round(wall, 3)}
    line |= {"cpu": round(own, 3), "children_cpu": round(children, 3)}
    line["worker"] = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(_PATH, "a", encoding="utf-8") as out:  # type: ignore[arg-type]
        out.write(json.dumps(line) + "\n")


def _measured(phase: str):
    @pytest.hookimpl(hookwrapper=True)
    def hook(item):
        if not _PATH:
            yield
            return
        start, (own, kids) = time.monotonic(), _cpu()
        yield
        own2, kids2 = _cpu()
        _record(item, phase, time.monotonic() - start, own2 - own, kids2 - kids)

    return hook


pytest_runtest_setup = _measured("setup")
pytest_runtest_call = _measured("call")
pytest_runtest_teardown = _measured("teardown")
