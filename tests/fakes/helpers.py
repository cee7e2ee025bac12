"""Constants and resource builders for the provider tests (real providers aimed at the fake)."""

from __future__ import annotations

import json

from storygen_dagster.defs.providers import HttpImageResource, OpenAIChatLLMResource
from tests.conftest import TEST_HEIGHT, TEST_WIDTH
from tests.fakes.provider_server import FakeProvider

KEY = "sk-live-SECRET-0123456789abcdef"
CHAT_MODEL, IMAGE_MODEL = "fake-chat", "fake-flux"
PRICES = {
    CHAT_MODEL: {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    IMAGE_MODEL: {"per_megapixel": 0.01},
}
FAST = {
    "STORYGEN_RETRY_BACKOFF_S": "0.01",
    "STORYGEN_RETRY_BACKOFF_MAX_S": "0.05",
    "STORYGEN_RETRY_AFTER_MAX_S": "5",
    "STORYGEN_RETRY_ATTEMPTS": "4",
    "STORYGEN_LLM_READ_TIMEOUT_S": "3",
    "STORYGEN_IMAGE_READ_TIMEOUT_S": "3",
    "STORYGEN_HTTP_CONNECT_TIMEOUT_S": "2",
    "STORYGEN_MODEL_PRICES": json.dumps(PRICES),
    "STORYGEN_LLM_RPM": "60000",
    "STORYGEN_IMAGE_RPM": "60000",
}


def llm_resource(fake: FakeProvider, **overrides) -> OpenAIChatLLMResource:
    fields = dict(base_url=fake.url, api_key=KEY, model=CHAT_MODEL, max_concurrency=8)
    return OpenAIChatLLMResource(**{**fields, **overrides})


def image_resource(fake: FakeProvider, **overrides) -> HttpImageResource:
    fields = dict(
        provider="together",
        base_url=fake.url,
        api_key=KEY,
        model=IMAGE_MODEL,
        width=TEST_WIDTH,
        height=TEST_HEIGHT,
    )
    return HttpImageResource(**{**fields, **overrides})


def fake_provider_vars(fake: FakeProvider) -> dict[str, str]:
    """The STORYGEN_* settings that point the real chat and image providers at the fake (what a
    `storygen` process reads), at the tests' small picture size."""
    return {
        "STORYGEN_LLM_PROVIDER": "openai",
        "STORYGEN_LLM_BASE_URL": fake.url,
        "STORYGEN_LLM_API_KEY": KEY,
        "STORYGEN_LLM_MODEL": CHAT_MODEL,
        "STORYGEN_IMAGE_PROVIDER": "together",
        "STORYGEN_IMAGE_BASE_URL": fake.url,
        "STORYGEN_IMAGE_API_KEY": KEY,
        "STORYGEN_IMAGE_MODEL": IMAGE_MODEL,
        "STORYGEN_IMAGE_WIDTH": str(TEST_WIDTH),
        "STORYGEN_IMAGE_HEIGHT": str(TEST_HEIGHT),
    }
