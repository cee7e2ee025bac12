"""The CLI's shared state: the settings, and the database and Dagster instance opened lazily
(so `--help` and bad input touch nothing)."""

from __future__ import annotations

from storygen_dagster.settings import get_settings


class Context:
    """Lazily opened database + Dagster instance (so `--help` and bad input touch nothing)."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            from storygen_dagster.storage import migrate
            from storygen_dagster.storage.db import resolve_database_url

            self._url = resolve_database_url(self.settings)
            migrate.upgrade(self._url)
        return self._url

    @property
    def engine(self):
        from storygen_dagster.storage.db import get_engine

        return get_engine(self.url)

    def instance(self):
        from storygen_dagster.instance import get_instance

        return get_instance(self.settings, self.url)
