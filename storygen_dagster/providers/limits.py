"""Process-wide limits shared by every provider call: one concurrency limit for all calls and
one rate limiter per provider. asyncio primitives belong to one event loop and every Dagster
step runs its own `asyncio.run`, so the limits are kept per running loop: all calls that can
be in flight together (one step at a time in the in-process executor) share them."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter


@dataclass
class _LoopLimits:
    slots: asyncio.Semaphore
    limiters: dict[str, AsyncLimiter] = field(default_factory=dict)


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopLimits] = (
    weakref.WeakKeyDictionary()
)


def _limits(max_concurrency: int) -> _LoopLimits:
    loop = asyncio.get_running_loop()
    state = _by_loop.get(loop)
    if state is None:
        state = _by_loop[loop] = _LoopLimits(asyncio.Semaphore(max_concurrency))
    return state


def global_slots(max_concurrency: int) -> asyncio.Semaphore:
    """The one concurrency limit of this process (sized by the first caller in the loop)."""
    return _limits(max_concurrency).slots


def rate_limiter(name: str, rpm: int, max_concurrency: int) -> AsyncLimiter:
    """Requests per minute for one provider. Bursts are at most one second's worth of
    requests, so a limit of 600 RPM never fires 600 requests in the same instant."""
    state = _limits(max_concurrency)
    key = f"{name}@{rpm}"
    if key not in state.limiters:
        burst = max(1, rpm // 60)
        state.limiters[key] = AsyncLimiter(burst, 60.0 * burst / rpm)
    return state.limiters[key]
