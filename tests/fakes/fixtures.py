"""Fixtures for the provider tests: the fake server, fast retry settings, real-provider
resources pointed at the fake. Test modules load them with `pytest_plugins`."""

from __future__ import annotations

import pytest

from tests.fakes.helpers import FAST, KEY, image_resource, llm_resource
from tests.fakes.provider_server import FakeProvider


@pytest.fixture()
def fake():
    with FakeProvider(api_key=KEY) as server:
        yield server


@pytest.fixture()
def provider_env(monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    for name in (
        "STORYGEN_LLM_API_KEY",
        "STORYGEN_IMAGE_API_KEY",
        "STORYGEN_LLM_PROVIDER",
        "STORYGEN_IMAGE_PROVIDER",
        "STORYGEN_MAX_CONCURRENCY",
        "STORYGEN_MAX_COST_PER_STORY_USD",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture()
def real_resources(resources, fake, provider_env) -> dict:
    return {**resources, "llm": llm_resource(fake), "images": image_resource(fake)}
