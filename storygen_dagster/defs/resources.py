"""Every resource, built once. A field left None falls back to the STORYGEN_* setting at run
time (never at import), so the same Definitions serve the demo, the UI and the tests."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from storygen_dagster.providers.base import ImageService, StoryLLM
from storygen_dagster.providers.offline import OfflineImageService, OfflineStoryLLM
from storygen_dagster.settings import get_settings
from storygen_dagster.storage import migrate
from storygen_dagster.storage.db import get_engine, resolve_database_url
from storygen_dagster.storage.objects import ObjectStore


class StoryDatabase(dg.ConfigurableResource):
    """The story tables (Postgres); migrated to head on first use."""

    database_url: str | None = None

    def url(self) -> str:
        return self.database_url or resolve_database_url(get_settings())

    def engine(self) -> sa.Engine:
        url = self.url()
        migrate.upgrade(url)
        return get_engine(url)


class ObjectStoreResource(dg.ConfigurableResource):
    """Images and books: a folder or an s3:// URL."""

    url: str | None = None
    endpoint_url: str | None = None

    def store(self) -> ObjectStore:
        settings = get_settings()
        url = self.url or settings.objects_url
        endpoint = self.endpoint_url or settings.s3_endpoint_url
        options = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
        return ObjectStore(url, options)


class StoryLLMResource(dg.ConfigurableResource):
    """The LLM behind the four story prompts."""

    provider: str | None = None
    latency_s: float | None = None
    max_concurrency: int | None = None

    def concurrency(self) -> int:
        return self.max_concurrency or get_settings().max_concurrency

    def client(self) -> StoryLLM:
        settings = get_settings()
        provider = self.provider or settings.llm_provider
        if provider == "offline":
            latency = settings.offline_latency_s if self.latency_s is None else self.latency_s
            return OfflineStoryLLM(latency_s=latency)
        raise ValueError(f"STORYGEN_LLM_PROVIDER={provider!r} is not supported")


class ImageServiceResource(dg.ConfigurableResource):
    """The image model and the picture size and prompt budget."""

    provider: str | None = None
    latency_s: float | None = None
    width: int | None = None
    height: int | None = None
    prompt_max_chars: int | None = None

    def size(self) -> tuple[int, int]:
        settings = get_settings()
        return self.width or settings.image_width, self.height or settings.image_height

    def prompt_budget(self) -> int:
        return self.prompt_max_chars or get_settings().image_prompt_max_chars

    def client(self) -> ImageService:
        settings = get_settings()
        provider = self.provider or settings.image_provider
        if provider == "offline":
            latency = settings.offline_latency_s if self.latency_s is None else self.latency_s
            return OfflineImageService(latency_s=latency)
        raise ValueError(f"STORYGEN_IMAGE_PROVIDER={provider!r} is not supported")


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "db": StoryDatabase(),
        "objects": ObjectStoreResource(),
        "llm": StoryLLMResource(),
        "images": ImageServiceResource(),
    }
