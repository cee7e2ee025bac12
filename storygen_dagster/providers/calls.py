"""A provider call as the pipeline sees it: look in the cache, check the story's budget, send
through the retry layer, record the call in the ledger (tokens, cost, attempts, status)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa

from storygen_dagster.providers.base import CallContext, ProviderError
from storygen_dagster.providers.http import ProviderHttp
from storygen_dagster.providers.http_parts import HttpResult
from storygen_dagster.settings import ModelPrice, Settings
from storygen_dagster.storage import call_cache, daily_budget
from storygen_dagster.storage.call_cache import CallRecord

log = logging.getLogger("storygen.providers")


class BudgetExceeded(ProviderError):
    pass


@dataclass
class CallOutcome:
    key: str
    response: Any
    cached: bool
    attempts: int
    latency_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    hold_id: int | None = None  # its estimate held in the daily budget until recorded
    recorded: bool = False


def chat_cost(price: ModelPrice | None, prompt_tokens: int, completion_tokens: int) -> float:
    if price is None:
        return 0.0
    return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6


def image_cost(price: ModelPrice | None, width: int, height: int) -> float:
    if price is None:
        return 0.0
    return price.per_image + price.per_megapixel * width * height / 1e6


class ProviderCalls:
    def __init__(self, http: ProviderHttp, model: str, engine: sa.Engine, settings: Settings):
        self.http = http
        self.model = model
        self.engine = engine
        self.settings = settings
        self.price = settings.price(model)
        if self.price is None:
            log.warning(
                "no price for model %s: its calls are recorded at $0 and not budgeted",
                model,
                extra={"provider": http.provider},
            )

    def key(self, endpoint: str, body: dict) -> str:
        return call_cache.cache_key(self.http.provider, self.model, endpoint, body)

    async def fetch(
        self,
        ctx: CallContext,
        client: httpx.AsyncClient,
        endpoint: str,
        body: dict,
        *,
        estimate_usd: float,
        wire: dict | None = None,
        tokens: int = 0,
        files: dict | None = None,
    ) -> CallOutcome:
        """The cached success for this exact request, or a new paid call (not yet recorded:
        the caller records it once it knows whether the answer is usable). `wire`: what is
        sent when it differs from `body`, the request as keyed and ledgered (a reference image
        is sent as megabytes of base64 but keyed and ledgered by its sha256); with `files`,
        `wire` is a multipart request's text fields (an image edit's input image is a file)."""
        key = self.key(endpoint, body)
        if not ctx.fresh:
            hit = await asyncio.to_thread(call_cache.lookup, self.engine, key)
            if hit is not None:
                return CallOutcome(
                    key,
                    hit.response,
                    True,
                    hit.attempts,
                    hit.latency_ms or 0.0,
                    hit.prompt_tokens,
                    hit.completion_tokens,
                    hit.cost_usd,
                )
        await self._check_budget(ctx, estimate_usd)
        hold_id = await self._hold_daily(ctx, estimate_usd)
        try:
            result: HttpResult = await self.http.post_json(
                client, endpoint, wire or body, tokens=tokens, files=files
            )
        except ProviderError as exc:
            await self.record_failure(ctx, key, endpoint, body, exc, hold_id=hold_id)
            raise
        except BaseException:
            await self._release(hold_id)
            raise
        return CallOutcome(
            key, result.body, False, result.attempts, result.latency_ms, hold_id=hold_id
        )

    async def _hold_daily(self, ctx: CallContext, estimate_usd: float) -> int | None:
        """STORYGEN_MAX_COST_PER_DAY_USD, checked atomically across every worker."""
        limit = self.settings.max_cost_per_day_usd
        if limit is None:
            return None
        hold_id, committed = await asyncio.to_thread(
            daily_budget.hold, self.engine, limit, estimate_usd
        )
        if hold_id is None:
            raise BudgetExceeded(
                f"{daily_budget.STOP_MARK}: ${committed:.4f} spent or in flight today (UTC) + this "
                f"{ctx.asset} call up to ${estimate_usd:.4f} > STORYGEN_MAX_COST_PER_DAY_USD="
                f"${limit:.4f}; story {ctx.story_id} stops here and resumes tomorrow (nightly "
                "schedule) or when run again"
            )
        return hold_id

    async def _release(self, hold_id: int | None) -> None:
        if hold_id is not None:
            await asyncio.to_thread(daily_budget.release, self.engine, hold_id)

    async def _check_budget(self, ctx: CallContext, estimate_usd: float) -> None:
        limit = self.settings.max_cost_per_story_usd
        spent = await asyncio.to_thread(call_cache.story_spend, self.engine, ctx.story_id)
        if spent + estimate_usd > limit:
            raise BudgetExceeded(
                f"budget exceeded for story {ctx.story_id}: spent ${spent:.4f} + this "
                f"{ctx.asset} call up to ${estimate_usd:.4f} > "
                f"STORYGEN_MAX_COST_PER_STORY_USD=${limit:.4f}"
            )

    async def record(
        self,
        ctx: CallContext,
        outcome: CallOutcome,
        endpoint: str,
        body: dict,
        *,
        status: str,
        response: Any = None,
        error: str | None = None,
    ) -> None:
        if outcome.cached:
            return
        rec = self._record(ctx, outcome.key, endpoint, body, status)
        rec.response = outcome.response if response is None else response
        rec.http_status = 200
        rec.error = error and self.http.redact(error)
        rec.attempts = outcome.attempts
        rec.latency_ms = outcome.latency_ms
        rec.prompt_tokens = outcome.prompt_tokens
        rec.completion_tokens = outcome.completion_tokens
        rec.cost_usd = outcome.cost_usd
        await asyncio.to_thread(call_cache.record, self.engine, rec)
        outcome.recorded = True
        await self._release(outcome.hold_id)
        outcome.hold_id = None

    async def record_unsettled(
        self,
        ctx: CallContext,
        endpoint: str,
        made: list[tuple[CallOutcome, dict]],
        exc: Exception,
    ) -> None:
        """Paid calls that an unexpected error stopped their caller from recording (an object
        store that refused the picture, a bug): recorded as failed, so their cost counts in the
        story's and the day's budget and the day's hold is released. The error that stopped the
        caller is the one raised: a failure to record here is logged."""
        error = f"{type(exc).__name__}: {exc}"
        for outcome, body in made:
            if outcome.cached or outcome.recorded:
                continue
            try:
                await self.record(ctx, outcome, endpoint, body, status="failed", error=error)
            except Exception as failed:
                log.error(
                    "a paid %s call of story %s could not be recorded: %s",
                    ctx.asset,
                    ctx.story_id,
                    self.http.redact(str(failed))[:300],
                    extra={"story_id": ctx.story_id, "asset": ctx.asset},
                )

    async def record_failure(
        self,
        ctx: CallContext,
        key: str,
        endpoint: str,
        body: dict,
        exc: ProviderError,
        hold_id: int | None = None,
    ) -> None:
        rec = self._record(ctx, key, endpoint, body, "failed")
        rec.http_status = exc.status_code
        rec.error = self.http.redact(str(exc))
        rec.attempts = getattr(exc, "attempts", 1)
        rec.latency_ms = getattr(exc, "latency_ms", 0.0)
        log.error(
            "provider call failed: provider=%s status=%s attempts=%s story_id=%s scene_id=%s "
            "asset=%s: %s",
            self.http.provider,
            exc.status_code,
            rec.attempts,
            ctx.story_id,
            ctx.scene_number,
            ctx.asset,
            rec.error,
            extra={
                "story_id": ctx.story_id,
                "scene_id": ctx.scene_number,
                "asset": ctx.asset,
                "provider": self.http.provider,
            },
        )
        await asyncio.to_thread(call_cache.record, self.engine, rec)
        await self._release(hold_id)

    def _record(
        self, ctx: CallContext, key: str, endpoint: str, body: dict, status: str
    ) -> CallRecord:
        # `body` never holds the key: it travels only in the Authorization header.
        return CallRecord(
            cache_key=key,
            provider=self.http.provider,
            model=self.model,
            endpoint=endpoint,
            request=body,
            status=status,
            story_id=ctx.story_id,
            asset=ctx.asset,
            scene_number=ctx.scene_number,
        )

    async def mark_succeeded(self, outcome: CallOutcome) -> None:
        if not outcome.cached:
            await asyncio.to_thread(call_cache.mark_succeeded, self.engine, outcome.key)


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
