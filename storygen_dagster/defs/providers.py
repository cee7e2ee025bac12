"""The providers as typed resources: an abstract resource per role (the story LLM, the image
model, content moderation) with an offline and a real subclass, as the Hacker News client of
Dagster's project_fully_featured. `provider_resources` picks the subclasses from the
STORYGEN_* settings once, when the Definitions are built; the UI's resource page then names
the class in use. A field left None falls back to its setting when the run sets the resource
up, so `.env` edits apply to the next run of a reloaded code location."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

import dagster as dg
import sqlalchemy as sa

from storygen_dagster.providers import factory
from storygen_dagster.providers.base import ImageService, StoryLLM
from storygen_dagster.providers.moderation import Moderation, build_moderation
from storygen_dagster.providers.offline import OfflineStoryLLM
from storygen_dagster.providers.offline_painter import OfflineImageService
from storygen_dagster.settings import Settings, get_settings
from storygen_dagster.storage.objects import ObjectStore


def _secret(own: str | None, setting) -> str | None:
    return own or (setting.get_secret_value() if setting else None)


class StoryLLMResource(dg.ConfigurableResource, ABC):
    """The LLM behind the four story prompts."""

    max_concurrency: int | None = None

    def concurrency(self) -> int:
        return self.max_concurrency or get_settings().max_concurrency

    @abstractmethod
    def client(self, engine: sa.Engine | None = None) -> StoryLLM:
        """`engine` holds the call cache and ledger (real providers need it)."""


class OfflineLLMResource(StoryLLMResource):
    """The offline story model: no network, deterministic for a request."""

    latency_s: float | None = None

    def client(self, engine: sa.Engine | None = None) -> StoryLLM:
        latency = get_settings().offline_latency_s if self.latency_s is None else self.latency_s
        return OfflineStoryLLM(latency_s=latency, max_concurrency=self.concurrency())


class OpenAIChatLLMResource(StoryLLMResource):
    """Any OpenAI-compatible chat endpoint (OpenAI, Together, Ollama, vLLM, ...)."""

    base_url: str | None = None
    api_key: str | None = None  # set from dg.EnvVar: the UI shows the variable, not the key
    model: str | None = None
    rpm: int | None = None

    def _key(self) -> str | None:
        return _secret(self.api_key, get_settings().llm_api_key)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A missing key fails the run at resource setup, before any step calls anything.
        factory.check_llm("openai", self._key())

    def client(self, engine: sa.Engine | None = None) -> StoryLLM:
        settings = get_settings()
        return factory.build_chat_llm(
            settings,
            engine,
            base_url=self.base_url or settings.llm_base_url,
            api_key=self._key(),
            model=self.model or settings.llm_model,
            rpm=self.rpm or settings.llm_rpm,
        )


class ImageServiceResource(dg.ConfigurableResource, ABC):
    """The image model, with the picture size and the prompt budget every model shares."""

    width: int | None = None
    height: int | None = None
    prompt_max_chars: int | None = None
    reference: str | None = None  # None: STORYGEN_IMAGE_REFERENCE

    def reference_mode(self) -> str:
        return self.reference or get_settings().image_reference

    def size(self) -> tuple[int, int]:
        settings = get_settings()
        return self.width or settings.image_width, self.height or settings.image_height

    def prompt_budget(self) -> int:
        return self.prompt_max_chars or get_settings().image_prompt_max_chars

    @abstractmethod
    def client(
        self, engine: sa.Engine | None = None, store: ObjectStore | None = None
    ) -> ImageService:
        """`engine` holds the call cache and ledger, `store` the cached images."""


class OfflinePainterResource(ImageServiceResource):
    """The offline painter: real PNGs drawn with Pillow from the prompt."""

    latency_s: float | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        factory.check_reference("offline", "", self.reference_mode())

    def client(
        self, engine: sa.Engine | None = None, store: ObjectStore | None = None
    ) -> ImageService:
        settings = get_settings()
        latency = settings.offline_latency_s if self.latency_s is None else self.latency_s
        return OfflineImageService(
            latency_s=latency,
            max_concurrency=settings.max_concurrency,
            reference=factory.check_reference("offline", "", self.reference_mode()),
        )


class HttpImageResource(ImageServiceResource):
    """Together's or OpenAI's image API (`provider`), or a server speaking either."""

    provider: str = "together"
    base_url: str | None = None
    api_key: str | None = None  # set from dg.EnvVar
    model: str | None = None
    rpm: int | None = None

    def _key(self) -> str | None:
        return _secret(self.api_key, get_settings().image_api_key)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A missing key or a reference mode the model cannot take fails before any step runs.
        factory.check_images(self.provider, self._key())
        model = self.model or get_settings().image_model
        factory.check_reference(self.provider, model, self.reference_mode())

    def client(
        self, engine: sa.Engine | None = None, store: ObjectStore | None = None
    ) -> ImageService:
        settings = get_settings()
        return factory.build_image_service(
            settings,
            engine,
            store,
            provider=self.provider,
            base_url=self.base_url or settings.image_base_url,
            api_key=self._key(),
            model=self.model or settings.image_model,
            rpm=self.rpm or settings.image_rpm,
            reference_mode=self.reference_mode(),
        )


class ModerationResource(dg.ConfigurableResource, ABC):
    """What content_safety asks besides the word list (STORYGEN_CONTENT_BLOCKLIST)."""

    @abstractmethod
    def client(self) -> Moderation | None:
        """The moderation endpoint's client, or None: the word list alone decides."""


class WordListOnly(ModerationResource):
    """No moderation endpoint: the word list alone decides."""

    def client(self) -> Moderation | None:
        return None


class ModerationEndpointResource(ModerationResource):
    """An OpenAI-compatible `POST {base}/moderations` endpoint."""

    base_url: str | None = None
    api_key: str | None = None  # set from dg.EnvVar
    model: str | None = None

    def client(self) -> Moderation | None:
        settings = get_settings()
        base_url = self.base_url or settings.moderation_url
        if not base_url:
            raise factory.ProviderConfigError(
                "the moderation endpoint needs a base_url or STORYGEN_MODERATION_URL"
            )
        key = self.api_key or _secret(None, settings.moderation_api_key or settings.llm_api_key)
        return build_moderation(
            settings, base_url=base_url, api_key=key, model=self.model or settings.moderation_model
        )


def _env_secret(name: str) -> dg.EnvVar | None:
    # dg.EnvVar fails resource setup when the variable is unset, so it is only used when set;
    # otherwise the key comes from the settings (.env file) or is absent (offline).
    return dg.EnvVar(name) if os.environ.get(name) else None


def provider_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    """The `llm`, `images` and `moderation` resources the settings name, resolved once."""
    settings = settings or get_settings()
    llm: StoryLLMResource = (
        OfflineLLMResource()
        if settings.llm_provider == "offline"
        else OpenAIChatLLMResource(api_key=_env_secret("STORYGEN_LLM_API_KEY"))
    )
    images: ImageServiceResource = (
        OfflinePainterResource()
        if settings.image_provider == "offline"
        else HttpImageResource(
            provider=settings.image_provider, api_key=_env_secret("STORYGEN_IMAGE_API_KEY")
        )
    )
    moderation: ModerationResource = (
        ModerationEndpointResource(api_key=_env_secret("STORYGEN_MODERATION_API_KEY"))
        if settings.moderation_url
        else WordListOnly()
    )
    return {"llm": llm, "images": images, "moderation": moderation}
