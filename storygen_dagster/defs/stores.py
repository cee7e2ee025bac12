"""The two stores as resources: the story tables (Postgres) and the object store (images and
books). The engine, the IO managers and the sensors all reach storage through these."""

import dagster as dg
import sqlalchemy as sa

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
