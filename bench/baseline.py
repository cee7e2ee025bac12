"""The measured baseline of the provider figures: the same number of chat and image requests
sent straight to the provider (httpx, `concurrency` in flight, no Dagster, no database), or for
the offline providers the same number of asyncio.sleep(L) calls. Pipeline wall / baseline is the
cost of everything around the calls."""

from __future__ import annotations

import asyncio
import functools
import time

import httpx


@functools.cache
def _story_schema() -> dict:
    from storygen_dagster.domain.models import StructuredStory
    from storygen_dagster.providers.replies import strict_schema

    return strict_schema(StructuredStory)


def _chat_body(model: str, i: int) -> dict:
    # The schema the pipeline sends (the fake's schema-only model answers from it).
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "Answer with JSON."},
            {"role": "user", "content": f"Child's name: Kid{i}\nuse exactly 4 scenes"},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "StructuredStory", "strict": True, "schema": _story_schema()},
        },
    }


Wave = tuple[int, int]  # (chat calls, image calls) sent together; waves run one after another


async def _http(
    url: str, key: str, models: tuple[str, str], waves: list[Wave], size, concurrency: int
) -> None:
    slots = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as client:

        async def call(path: str, body: dict) -> None:
            async with slots:
                (await client.post(f"{url}{path}", json=body)).raise_for_status()

        width, height = size
        for chat, images in waves:
            await asyncio.gather(
                *(call("/chat/completions", _chat_body(models[0], i)) for i in range(chat)),
                *(
                    call(
                        "/images/generations",
                        {"model": models[1], "prompt": f"p{i}", "width": width, "height": height},
                    )
                    for i in range(images)
                ),
            )


async def _sleeps(latency: float, waves: list[Wave], concurrency: int) -> None:
    slots = asyncio.Semaphore(concurrency)

    async def call() -> None:
        async with slots:
            await asyncio.sleep(latency)

    for chat, images in waves:
        await asyncio.gather(*(call() for _ in range(chat + images)))


def http_calls(url: str, key: str, models, waves: list[Wave], size, concurrency: int) -> float:
    started = time.perf_counter()
    asyncio.run(_http(url, key, models, waves, size, concurrency))
    return time.perf_counter() - started


def offline_calls(latency: float, waves: list[Wave], concurrency: int) -> float:
    started = time.perf_counter()
    asyncio.run(_sleeps(latency, waves, concurrency))
    return time.perf_counter() - started
