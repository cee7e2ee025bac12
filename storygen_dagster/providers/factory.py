"""Provider selection by setting, and the start-up check that a real provider has its key."""

from __future__ import annotations

import sqlalchemy as sa

from storygen_dagster.domain.assets import models_by_asset
from storygen_dagster.providers import reference
from storygen_dagster.providers.base import ImageService, StoryLLM
from storygen_dagster.providers.calls import ProviderCalls
from storygen_dagster.providers.http import ProviderHttp
from storygen_dagster.providers.images_http import HttpImageService
from storygen_dagster.providers.offline_review import OfflinePictureReviewer
from storygen_dagster.providers.openai_chat import OpenAIChatLLM
from storygen_dagster.providers.reviewer import PictureReviewer
from storygen_dagster.providers.vision_chat import OpenAIVisionReviewer
from storygen_dagster.settings import Settings
from storygen_dagster.storage.objects import ObjectStore

IMAGE_BASE_URLS = {
    "together": "https://api.together.xyz/v1",
    "openai": "https://api.openai.com/v1",
}


class ProviderConfigError(ValueError):
    """A real provider is selected but cannot work (names the setting, never its value)."""


def check_llm(provider: str, api_key: str | None) -> None:
    if provider not in ("offline", "openai"):
        raise ProviderConfigError(f"STORYGEN_LLM_PROVIDER={provider!r}: use offline or openai")
    if provider != "offline" and not api_key:
        raise ProviderConfigError(
            f"STORYGEN_LLM_PROVIDER={provider} needs STORYGEN_LLM_API_KEY (for a local server "
            "that ignores keys, such as Ollama, set any value)"
        )


def check_images(provider: str, api_key: str | None) -> None:
    if provider not in ("offline", "together", "openai"):
        raise ProviderConfigError(
            f"STORYGEN_IMAGE_PROVIDER={provider!r}: use offline, together or openai"
        )
    if provider != "offline" and not api_key:
        raise ProviderConfigError(
            f"STORYGEN_IMAGE_PROVIDER={provider} needs STORYGEN_IMAGE_API_KEY"
        )


def check_reference(provider: str, model: str, mode: str) -> str:
    """How scenes carry the character sheet with this model (providers/reference.py)."""
    try:
        return reference.resolve(provider, model, mode)
    except reference.ReferenceConfigError as exc:
        raise ProviderConfigError(str(exc)) from None


def vision_key(settings: Settings) -> str | None:
    return _secret(settings.vision_api_key) or _secret(settings.llm_api_key)


def check_vision(model: str, api_key: str | None) -> None:
    if model not in ("offline", "none") and not api_key:
        raise ProviderConfigError(
            f"STORYGEN_VISION_MODEL={model} needs STORYGEN_VISION_API_KEY (or "
            "STORYGEN_LLM_API_KEY); use offline or none for no vision model"
        )


def check_settings(settings: Settings) -> None:
    """The CLI calls this before it touches the database or starts a run."""
    check_vision(settings.vision_model, vision_key(settings))
    check_llm(settings.llm_provider, _secret(settings.llm_api_key))
    check_images(settings.image_provider, _secret(settings.image_api_key))
    check_reference(settings.image_provider, settings.image_model, settings.image_reference)


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None


def build_chat_llm(
    settings: Settings,
    engine: sa.Engine | None,
    *,
    base_url: str,
    api_key: str | None,
    model: str,
    rpm: int,
) -> StoryLLM:
    check_llm("openai", api_key)
    if engine is None:
        raise ProviderConfigError("a real LLM provider needs the database for its call cache")
    http = ProviderHttp(
        provider="openai",
        base_url=base_url,
        api_key=api_key,
        rpm=rpm,
        read_timeout_s=settings.llm_read_timeout_s,
        settings=settings,
        limit_name="llm:openai",
        database_url=libpq_url(engine),
        tpm=settings.llm_tpm,
    )
    return OpenAIChatLLM(
        ProviderCalls(http, model, engine, settings),
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
    )


def build_image_service(
    settings: Settings,
    engine: sa.Engine | None,
    store: ObjectStore | None,
    *,
    provider: str,
    base_url: str | None,
    api_key: str | None,
    model: str,
    rpm: int,
    reference_mode: str | None = None,
) -> ImageService:
    check_images(provider, api_key)
    mode = check_reference(provider, model, reference_mode or settings.image_reference)
    if engine is None or store is None:
        raise ProviderConfigError("a real image provider needs the database and object store")
    http = ProviderHttp(
        provider=provider,
        base_url=base_url or IMAGE_BASE_URLS[provider],
        api_key=api_key,
        rpm=rpm,
        read_timeout_s=settings.image_read_timeout_s,
        settings=settings,
        limit_name=f"images:{provider}",
        database_url=libpq_url(engine),
    )
    return HttpImageService(
        ProviderCalls(http, model, engine, settings),
        store,
        flavor=provider,
        steps=settings.image_steps,
        response_format=settings.image_response_format,
        reference=mode,
    )


def libpq_url(engine: sa.Engine) -> str:
    """The engine's database as a libpq URL (the shared limits' psycopg pool)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def build_reviewer(
    settings: Settings,
    engine: sa.Engine | None,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
) -> PictureReviewer | None:
    """The picture reviewer STORYGEN_VISION_MODEL names: None for `none`, the offline checks
    for `offline`, else that model behind the OpenAI-compatible chat endpoint."""
    model = model or settings.vision_model
    if model == "none":
        return None
    if model == "offline":
        return OfflinePictureReviewer()
    key = api_key or vision_key(settings)
    check_vision(model, key)
    if engine is None:
        raise ProviderConfigError("a vision model needs the database for its call cache")
    http = ProviderHttp(
        provider="openai",
        base_url=base_url or settings.vision_base_url or settings.llm_base_url,
        api_key=key,
        rpm=settings.vision_rpm,
        read_timeout_s=settings.llm_read_timeout_s,
        settings=settings,
        limit_name="vision:openai",
        database_url=libpq_url(engine),
    )
    chat = OpenAIChatLLM(
        ProviderCalls(http, model, engine, settings),
        max_tokens=settings.vision_max_tokens,
        temperature=0.0,  # a judgement, not a story: the same picture, the same verdict
    )
    return OpenAIVisionReviewer(chat)


def current_models(settings: Settings) -> dict[str, str]:
    """The model each story asset would be built with now (what `up_to_date` compares with)."""
    from storygen_dagster.providers.offline import OFFLINE_MODEL
    from storygen_dagster.providers.offline_painter import OfflineImageService

    llm = OFFLINE_MODEL if settings.llm_provider == "offline" else settings.llm_model
    image = (
        OfflineImageService.model if settings.image_provider == "offline" else settings.image_model
    )
    return models_by_asset(llm, image)
