"""Print files wait while the batch still calls providers: fpdf2 and fontTools are pure
Python that holds the GIL, and renders in worker threads beside the provider calls starved the
event loop that sends them. While any story of the batch has provider stages ahead, one print
file renders at a time; once none has, every waiting render goes at once (in parallel they use
the second core for zlib and Pillow, which release the GIL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class RenderGate:
    def __init__(self) -> None:
        self.calling = 0  # stories with provider stages still ahead
        self.rendering = 0
        self._changed = asyncio.Condition()

    def calls_started(self) -> None:
        self.calling += 1

    async def calls_done(self) -> None:
        async with self._changed:
            self.calling -= 1
            self._changed.notify_all()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self.calling <= 0 or self.rendering == 0)
            self.rendering += 1
        try:
            yield
        finally:
            async with self._changed:
                self.rendering -= 1
                self._changed.notify_all()
