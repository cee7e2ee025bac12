"""Every resource, built once. A field left None falls back to the STORYGEN_* setting at run
time (never at import), so the same Definitions serve the demo, the UI and the tests."""

from __future__ import annotations

import os

import dagster as dg
import sqlalchemy as sa

from storygen_dagster.defs.io_managers import io_managers
from storygen_dagster.defs.stores import ObjectStoreResource, StoryDatabase
from storygen_dagster.providers import factory
from storygen_dagster.providers.base import ImageService, StoryLLM
from storygen_dagster.providers.offline import OfflineImageService, OfflineStoryLLM
from storygen_dagster.settings import get_settings
from storygen_dagster.storage.objects import ObjectStore

# The stores live in stores.py (the IO managers are built on them); named here for callers.
__all__ = [
    "ImageServiceResource",
    "ObjectStoreResource",
    "StoryDatabase",
    "StoryLLMResource",
    "default_resources",
    "with_io_managers",
]


class StoryLLMResource(dg.ConfigurableResource):
    """The LLM behind the four story prompts: offline, or any OpenAI-compatible endpoint."""

    provider: str | None = None
    latency_s: float | None = None
    max_concurrency: int | None = None
    base_url: str | None = None
    api_key: str | None = None  # set from dg.EnvVar: the UI shows the variable, not the key
    model: str | None = None
    rpm: int | None = None

    def concurrency(self) -> int:
        return self.max_concurrency or get_settings().max_concurrency

    def _provider(self) -> str:
        return self.provider or get_settings().llm_provider

    def _key(self) -> str | None:
        key = get_settings().llm_api_key
        return self.api_key or (key.get_secret_value() if key else None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A missing key fails the run at resource setup, before any step calls anything.
        factory.check_llm(self._provider(), self._key())

    def client(self, engine: sa.Engine | None = None) -> StoryLLM:
        """`engine` holds the call cache and ledger (real providers need it)."""
        settings = get_settings()
        provider = self._provider()
        if provider == "offline":
            latency = settings.offline_latency_s if self.latency_s is None else self.latency_s
            return OfflineStoryLLM(latency_s=latency, max_concurrency=self.concurrency())
        return factory.build_chat_llm(
            settings,
            engine,
            base_url=self.base_url or settings.llm_base_url,
            api_key=self._key(),
            model=self.model or settings.llm_model,
            rpm=self.rpm or settings.llm_rpm,
        )


class ImageServiceResource(dg.ConfigurableResource):
    """The image model (offline, Together or OpenAI) and the picture size and prompt budget."""

    provider: str | None = None
    latency_s: float | None = None
    width: int | None = None
    height: int | None = None
    prompt_max_chars: int | None = None
    base_url: str | None = None
    api_key: str | None = None  # set from dg.EnvVar
    model: str | None = None
    rpm: int | None = None

    def size(self) -> tuple[int, int]:
        settings = get_settings()
        return self.width or settings.image_width, self.height or settings.image_height

    def prompt_budget(self) -> int:
        return self.prompt_max_chars or get_settings().image_prompt_max_chars

    def _provider(self) -> str:
        return self.provider or get_settings().image_provider

    def _key(self) -> str | None:
        key = get_settings().image_api_key
        return self.api_key or (key.get_secret_value() if key else None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        factory.check_images(self._provider(), self._key())

    def client(
        self, engine: sa.Engine | None = None, store: ObjectStore | None = None
    ) -> ImageService:
        """`engine` holds the call cache and ledger, `store` the cached images."""
        settings = get_settings()
        provider = self._provider()
        if provider == "offline":
            latency = settings.offline_latency_s if self.latency_s is None else self.latency_s
            return OfflineImageService(latency_s=latency, max_concurrency=settings.max_concurrency)
        return factory.build_image_service(
            settings,
            engine,
            store,
            provider=provider,
            base_url=self.base_url or settings.image_base_url,
            api_key=self._key(),
            model=self.model or settings.image_model,
            rpm=self.rpm or settings.image_rpm,
        )


def _env_secret(name: str) -> dg.EnvVar | None:
    # dg.EnvVar fails resource setup when the variable is unset, so it is only used when set;
    # otherwise the key comes from the settings (.env file) or is absent (offline).
    return dg.EnvVar(name) if os.environ.get(name) else None


def with_io_managers(resources: dict) -> dict:
    """The IO managers built on this dict's own `db` and `objects` (so they read and write the
    same database and object store as the engine), unless it names them already."""
    return {**io_managers(resources["db"], resources["objects"]), **resources}


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return with_io_managers(
        {
            "db": StoryDatabase(),
            "objects": ObjectStoreResource(),
            "llm": StoryLLMResource(api_key=_env_secret("STORYGEN_LLM_API_KEY")),
            "images": ImageServiceResource(api_key=_env_secret("STORYGEN_IMAGE_API_KEY")),
        }
    )
