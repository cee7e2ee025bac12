"""The pieces of provider HTTP that are not the retry loop (providers/http.py): which transport
errors count as a dropped connection, the retryable failure, a call's result, Retry-After, the
shared TLS context, and reading a reply."""

from __future__ import annotations

import email.utils
import functools
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from storygen_dagster.providers.base import ProviderError

# The connection died before a full response: refused, reset (ReadError/WriteError), closed
# without a reply or mid-body (RemoteProtocolError): a crashed worker, a restarted load
# balancer, a keep-alive connection closed by the server as it was reused. Retried like a
# timeout (as the OpenAI SDK does): a request the server had already processed is then paid
# twice, the price of not failing the story. The other transport errors (UnsupportedProtocol,
# LocalProtocolError) are ours: the same request would fail again.
DROPPED = (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)


class Retryable(Exception):
    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class HttpResult:
    status: int
    body: Any  # parsed JSON, or bytes for downloads
    attempts: int
    latency_ms: float
    waits: list[float] = field(default_factory=list)


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or a date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle costs ~50 ms of CPU (measured here, on the event loop's thread):
    done once per process, not once per call."""
    return httpx.create_ssl_context()


def describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def url_path(url: str) -> str:
    return httpx.URL(url).path


def snippet(response: httpx.Response, limit: int = 300) -> str:
    return " ".join(response.text.split())[:limit]


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderError(
            f"HTTP {response.status_code} reply is not JSON: {snippet(response, 120)}",
            status_code=response.status_code,
        ) from exc
