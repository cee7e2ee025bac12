"""The one retry layer for every provider HTTP request (tenacity): explicit timeouts; retries
on timeouts, dropped connections (refused, reset, closed before or during the reply), 429 and
5xx with exponential backoff + jitter or the server's Retry-After (capped); never on other 4xx
nor on a request that cannot be sent as written (bad URL scheme); 402 (out of credits) trips a
breaker so no further request of this client is sent. Each attempt takes the provider's rate
limit and one slot of the process-wide concurrency limit; backoff sleeps hold neither."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from storygen_dagster.providers.base import ProviderError
from storygen_dagster.providers.http_parts import (
    DROPPED,
    HttpResult,
    Retryable,
    describe,
    json_body,
    parse_retry_after,
    snippet,
    ssl_context,
    url_path,
)
from storygen_dagster.providers.limits import global_slots, rate_limiter
from storygen_dagster.providers.shared_limits import SharedRates, shared_rates
from storygen_dagster.providers.token_limits import check_tokens, take_tokens
from storygen_dagster.settings import Settings

log = logging.getLogger("storygen.providers")


class ProviderHttp:
    """Resilient requests to one provider. Holds no connection between calls: each logical
    call opens its own httpx.AsyncClient, because every Dagster step runs a new event loop and
    a pooled client cannot outlive the loop it was used in. The TLS context is shared."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        api_key: str | None,
        rpm: int,
        read_timeout_s: float,
        settings: Settings,
        limit_name: str | None = None,
        database_url: str | None = None,
        tpm: int = 0,
    ):
        self.provider = provider
        # LLM and image calls have separate RPM settings even on the same provider.
        self.limit_name = limit_name or provider
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.rpm = rpm
        self.tpm = tpm  # tokens per minute (0: none); a call says how many it may use
        self.settings = settings
        self.timeout = httpx.Timeout(
            connect=settings.http_connect_timeout_s,
            read=read_timeout_s,
            write=settings.http_connect_timeout_s,
            pool=None,  # waiting for a slot is bounded by our own limits
        )
        # With a database and STORYGEN_LIMITS=shared, the RPM limit and 429 pauses are shared
        # by every process (providers/shared_limits.py); else they are this process's own.
        self.database_url = database_url if settings.limits == "shared" else None
        self.out_of_credits: str | None = None
        self.waits: list[float] = []  # every backoff sleep of this client (logs and tests)

    def redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, follow_redirects=True, verify=ssl_context())

    async def post_json(
        self,
        client: httpx.AsyncClient,
        path: str,
        body: dict,
        *,
        tokens: int = 0,
        files: dict | None = None,
    ) -> HttpResult:
        """`tokens`: what the call may use (prompt + max_tokens), taken from the TPM limit.
        With `files` the request is multipart/form-data (`body`: its text fields); the reply is
        JSON either way."""
        check_tokens(self.provider, self.tpm, self.settings, tokens)
        url = f"{self.base_url}/{path}"
        return await self._request(client, "POST", url, body, api=True, tokens=tokens, files=files)

    async def get_bytes(self, client: httpx.AsyncClient, url: str) -> HttpResult:
        # A result URL may be on a CDN: it gets neither our key nor our API rate limit.
        return await self._request(client, "GET", url, None, api=False)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.settings.retry_after_max_s)
        s = self.settings
        return wait_exponential_jitter(
            initial=s.retry_backoff_s, max=s.retry_backoff_max_s, jitter=s.retry_backoff_s
        )(state)

    async def _request(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        body: dict | None,
        *,
        api: bool,
        tokens: int = 0,
        files: dict | None = None,
    ) -> HttpResult:
        started = time.perf_counter()
        waits: list[float] = []
        attempts = 0

        async def sleep(seconds: float) -> None:
            waits.append(seconds)
            self.waits.append(seconds)
            await asyncio.sleep(seconds)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retry_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(Retryable),
            sleep=sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    response = await self._once(client, method, url, body, api, tokens, files)
        except (Retryable, ProviderError) as exc:
            status = exc.status if isinstance(exc, Retryable) else exc.status_code
            fatal = isinstance(exc, ProviderError) and exc.fatal
            what = "gave up after" if isinstance(exc, Retryable) else "failed on attempt"
            err = ProviderError(
                self.redact(f"{self.provider} {method} {url_path(url)} {what} {attempts}: {exc}"),
                status_code=status,
                fatal=fatal,
            )
            err.attempts = attempts  # type: ignore[attr-defined]
            err.latency_ms = round((time.perf_counter() - started) * 1000, 3)  # type: ignore[attr-defined]
            raise err from None
        latency = round((time.perf_counter() - started) * 1000, 3)
        payload = response.content if not api else json_body(response)
        return HttpResult(response.status_code, payload, attempts, latency, waits)

    async def _once(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        body: dict | None,
        api: bool,
        tokens: int = 0,
        files: dict | None = None,
    ) -> httpx.Response:
        if self.out_of_credits:
            raise ProviderError(self.out_of_credits, status_code=402, fatal=True)
        shared = self._shared() if api else None
        if shared is None and api:
            limiter = rate_limiter(self.limit_name, self.rpm, self.settings.max_concurrency)
            await limiter.acquire()
        # Every attempt: a provider counts a retried call's tokens again.
        await take_tokens(self.limit_name, self.tpm, tokens, self.settings, self.database_url)
        headers = {"Authorization": f"Bearer {self._api_key}"} if api and self._api_key else {}
        slots = global_slots(self.settings.max_concurrency)
        await self._slot_and_token(slots, shared)
        try:
            if self.out_of_credits:  # tripped while this call waited for a slot
                raise ProviderError(self.out_of_credits, status_code=402, fatal=True)
            try:
                if files:  # each attempt builds its multipart body anew from the bytes
                    response = await client.request(
                        method, url, data=body, files=files, headers=headers
                    )
                else:
                    response = await client.request(method, url, json=body, headers=headers)
            except httpx.TimeoutException as exc:
                raise Retryable(f"timeout ({type(exc).__name__})") from exc
            except DROPPED as exc:
                raise Retryable(f"connection dropped ({describe(exc)})") from exc
            except httpx.TransportError as exc:
                raise ProviderError(f"request not sent ({describe(exc)})") from exc
        finally:
            slots.release()
        code = response.status_code
        if code == 429 or code >= 500:
            retry_after = parse_retry_after(response.headers)
            if shared is not None and code == 429 and retry_after:
                # Every worker waits, not only this call: they share the provider's limit.
                await shared.pause(min(retry_after, self.settings.retry_after_max_s))
            raise Retryable(f"HTTP {code}: {snippet(response)}", code, retry_after)
        if code == 402:
            self.out_of_credits = self.redact(
                f"{self.provider}: HTTP 402 Payment Required (out of credits), stopping all "
                f"calls: {snippet(response)}"
            )
            raise ProviderError(self.out_of_credits, status_code=402, fatal=True)
        if code >= 400:
            raise ProviderError(f"HTTP {code}: {snippet(response)}", status_code=code)
        return response

    @staticmethod
    async def _slot_and_token(slots: asyncio.Semaphore, shared: SharedRates | None) -> None:
        """A concurrency slot, then the shared rate's token, taken just before the request:
        the provider counts the request when we do. (Token first, a request that waited for
        a slot carried a stale token and took a second one while holding its slot; a batch's
        calls queued behind those retakes, one limit thread each: 20 stories' calls stopped
        for 6-7 s at a time.) When the rate is spent, the slot is given back for the wait,
        so other providers' calls are not held up by this one's limit. Returns holding a
        slot."""
        while True:
            await slots.acquire()
            if shared is None:
                return
            try:
                _, wait = await shared.try_acquire()
            except BaseException:
                slots.release()
                raise
            if wait <= 0:
                return
            slots.release()
            await asyncio.sleep(wait)

    def _shared(self) -> SharedRates | None:
        if self.database_url is None:
            return None
        return shared_rates(
            self.limit_name,
            self.rpm,
            self.settings.rate_window_s,
            database_url=self.database_url,
            redis_url=self.settings.limits_redis_url,
        )
