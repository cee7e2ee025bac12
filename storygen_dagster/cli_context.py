"""The CLI's shared state (the settings, and the database and Dagster instance opened lazily,
so `--help` and bad input touch nothing) and its group, which turns a lost database into one
error line."""

from __future__ import annotations

import click

from storygen_dagster.settings import get_settings
from storygen_dagster.storage.outages import EXIT_DATABASE_UNREACHABLE


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


class DatabaseUnreachable(click.ClickException):
    exit_code = EXIT_DATABASE_UNREACHABLE


class StorygenGroup(click.Group):
    """Turns a lost or unreachable database, wherever a command meets it, into one error
    line naming the (masked) database URL."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if isinstance(exc, click.ClickException | click.exceptions.Exit | click.Abort):
                raise
            from storygen_dagster.storage.outages import is_connection_error

            if not is_connection_error(exc):
                raise
            raise DatabaseUnreachable(_unreachable_message(ctx.obj, exc)) from exc


def _unreachable_message(obj: Context | None, exc: BaseException) -> str:
    from storygen_dagster.storage.db import describe_database, describe_embedded

    settings = obj.settings if obj is not None else get_settings()
    url = getattr(obj, "_url", None) or settings.database_url
    where = describe_database(url) if url else describe_embedded(settings.home_dir / "pgdata")
    detail = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return f"the database is unreachable ({where}): {detail.strip()}"
