"""The settings pick each provider role's resource subclass once, when the Definitions are
built; the run's fields fall back to the same settings."""

from __future__ import annotations

import pydantic
import pytest

from storygen_dagster.defs.providers import (
    HttpImageResource,
    ImageServiceResource,
    ModerationEndpointResource,
    ModerationResource,
    OfflineLLMResource,
    OfflinePainterResource,
    OpenAIChatLLMResource,
    StoryLLMResource,
    WordListOnly,
    provider_resources,
)
from storygen_dagster.settings import Settings


def _picked(**settings) -> dict[str, type]:
    return {k: type(v) for k, v in provider_resources(Settings(**settings)).items()}


def test_offline_defaults_pick_the_offline_resources():
    assert _picked() == {
        "llm": OfflineLLMResource,
        "images": OfflinePainterResource,
        "moderation": WordListOnly,
    }


def test_real_providers_pick_the_http_resources(monkeypatch):
    monkeypatch.setenv("STORYGEN_IMAGE_API_KEY", "sk-test")
    picked = provider_resources(
        Settings(
            llm_provider="openai",
            image_provider="openai",
            moderation_url="http://127.0.0.1:9/v1",
        )
    )
    assert isinstance(picked["llm"], OpenAIChatLLMResource)
    assert isinstance(picked["images"], HttpImageResource)
    assert picked["images"].provider == "openai"
    assert isinstance(picked["moderation"], ModerationEndpointResource)
    # Every subclass is its role's abstract resource, which is what the asset asks for.
    assert isinstance(picked["llm"], StoryLLMResource)
    assert isinstance(picked["images"], ImageServiceResource)
    assert isinstance(picked["moderation"], ModerationResource)


def test_an_unknown_provider_name_fails_naming_the_setting():
    with pytest.raises(pydantic.ValidationError, match="llm_provider"):
        Settings(llm_provider="anthropic")


def test_the_abstract_roles_cannot_be_built():
    for role in (StoryLLMResource, ImageServiceResource, ModerationResource):
        with pytest.raises(TypeError, match="abstract"):
            role()


def test_a_moderation_endpoint_without_a_url_says_which_setting(monkeypatch):
    monkeypatch.delenv("STORYGEN_MODERATION_URL", raising=False)
    with pytest.raises(ValueError, match="STORYGEN_MODERATION_URL"):
        ModerationEndpointResource().client()
