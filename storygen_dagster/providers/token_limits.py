"""Tokens per minute (STORYGEN_LLM_TPM): a provider that counts tokens, not only requests,
answers 429 once a minute's tokens are spent. Each call takes what it may use (its prompt,
estimated at ~4 characters a token, plus max_tokens) before it is sent, from a limit shared by
every process like the requests per minute (providers/shared_limits.py), or this process's own
with STORYGEN_LIMITS=process."""

from __future__ import annotations

import threading

from pyrate_limiter import InMemoryBucket, Limiter

from storygen_dagster.providers.base import ProviderError
from storygen_dagster.providers.shared_limits import (
    shared_rates,
    token_rates_for,
    tokens_per_window,
)
from storygen_dagster.settings import Settings

_lock = threading.Lock()
_local: dict[tuple[str, int, float], Limiter] = {}


def _local_limiter(name: str, tpm: int, window_s: float) -> Limiter:
    """This process's token limit: a sliding-window log (pyrate-limiter in memory), as the
    provider counts. Not aiolimiter's leaky bucket: a full bucket plus what leaks in one
    window lets up to twice the limit through in a window (measured: 10 sends, 4 refused)."""
    with _lock:
        key = (name, tpm, window_s)
        if key not in _local:
            _local[key] = Limiter(InMemoryBucket(token_rates_for(tpm, window_s)))
        return _local[key]


def check_tokens(provider: str, tpm: int, settings: Settings, tokens: int) -> None:
    """A call that can never fit the limit fails at once, naming the settings to change."""
    window = settings.rate_window_s
    if tpm and tokens > (fits := tokens_per_window(tpm, window)):
        raise ProviderError(
            f"{provider}: a call of up to {tokens} tokens can never fit STORYGEN_LLM_TPM={tpm} "
            f"({fits} per {window:g} s): raise STORYGEN_LLM_TPM or lower STORYGEN_LLM_MAX_TOKENS",
            fatal=True,
        )


async def take_tokens(
    limit_name: str, tpm: int, tokens: int, settings: Settings, database_url: str | None
) -> None:
    """Wait until `tokens` more fit this minute's (window's) limit, and take them."""
    if not (tpm and tokens):
        return
    window = settings.rate_window_s
    if database_url is not None:
        limit = shared_rates(
            f"{limit_name}:tokens",
            tpm,
            window,
            database_url=database_url,
            redis_url=settings.limits_redis_url,
            tokens=True,
        )
        await limit.acquire(tokens)
    else:
        limiter = _local_limiter(limit_name, tpm, window)
        await limiter.try_acquire_async(limit_name, weight=tokens)
