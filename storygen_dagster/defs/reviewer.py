"""The picture reviewer as a typed resource (issue 16), chosen from STORYGEN_VISION_MODEL when
the Definitions are built: `none` (no review), `offline` (the checks the offline reviewer makes
on the PNG) or a vision chat model behind the OpenAI-compatible endpoint. Each carries
STORYGEN_MAX_REDRAWS (a field left None falls back to the setting at run time)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

import dagster as dg
import sqlalchemy as sa

from storygen_dagster.providers import factory
from storygen_dagster.providers.offline_review import OfflinePictureReviewer
from storygen_dagster.providers.reviewer import PictureReviewer
from storygen_dagster.settings import Settings, get_settings


class PictureReviewerResource(dg.ConfigurableResource, ABC):
    """Reviews every scene picture; a failing one is redrawn at most `max_redraws` times."""

    max_redraws: int | None = None

    def redraws(self) -> int:
        return get_settings().max_redraws if self.max_redraws is None else self.max_redraws

    @abstractmethod
    def client(self, engine: sa.Engine | None = None) -> PictureReviewer | None:
        """None: pictures are not reviewed."""


class NoPictureReview(PictureReviewerResource):
    """STORYGEN_VISION_MODEL=none: no review, no redraw."""

    def client(self, engine: sa.Engine | None = None) -> PictureReviewer | None:
        return None


class OfflinePictureReview(PictureReviewerResource):
    """The offline checks: blank regions, the outfit's colour, the friend drawn when named."""

    def client(self, engine: sa.Engine | None = None) -> PictureReviewer | None:
        return OfflinePictureReviewer()


class VisionModelReview(PictureReviewerResource):
    """A vision-capable model behind any OpenAI-compatible chat endpoint."""

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None  # set from dg.EnvVar: the UI shows the variable, not the key

    def _key(self) -> str | None:
        return self.api_key or factory.vision_key(get_settings())

    def _model(self) -> str:
        return self.model or get_settings().vision_model

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        factory.check_vision(self._model(), self._key())

    def client(self, engine: sa.Engine | None = None) -> PictureReviewer | None:
        return factory.build_reviewer(
            get_settings(),
            engine,
            model=self._model(),
            base_url=self.base_url,
            api_key=self._key(),
        )


def reviewer_resource(settings: Settings | None = None) -> PictureReviewerResource:
    settings = settings or get_settings()
    if settings.vision_model == "none":
        return NoPictureReview()
    if settings.vision_model == "offline":
        return OfflinePictureReview()
    # dg.EnvVar fails resource setup when the variable is unset: used only when it is set.
    key = "STORYGEN_VISION_API_KEY"
    return VisionModelReview(api_key=dg.EnvVar(key) if os.environ.get(key) else None)
