"""The dbt_metadata project: located once, its manifest prepared when missing or older than a
model (never committed, never stale), and the connection handed to dbt through
STORYGEN_DBT_* variables."""

import os
import shutil
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject
from sqlalchemy.engine import make_url

PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_metadata"


def dbt_executable() -> str:
    """The dbt beside this interpreter (a venv used without activating it), else PATH's."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def dbt_env(database_url: str) -> dict[str, str]:
    """The profile's variables for a Postgres URL (a unix-socket host comes in ?host=)."""
    url = make_url(database_url)
    return {
        "STORYGEN_DBT_HOST": str(url.query.get("host") or url.host or "127.0.0.1"),
        "STORYGEN_DBT_PORT": str(url.port or 5432),
        "STORYGEN_DBT_USER": url.username or "postgres",
        "STORYGEN_DBT_PASSWORD": url.password or "",
        "STORYGEN_DBT_DBNAME": url.database or "postgres",
    }


def manifest_is_stale(manifest: Path, project_dir: Path = PROJECT_DIR) -> bool:
    """Missing, or older than any model, test or project file (a changed model would
    otherwise run against the old manifest: dagster-dbt fails on unknown test ids)."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(
        p.stat().st_mtime > built
        for p in project_dir.rglob("*")
        if p.suffix in (".sql", ".yml", ".yaml")
        and not {"target", "logs", "dbt_packages"} & set(p.relative_to(project_dir).parts)
    )


@cache
def dbt_project() -> DbtProject:
    # dagster-dbt's preparer calls plain `dbt`: make the one beside this interpreter findable
    # when the venv is used without being activated (`.venv/bin/storygen`, CI).
    bin_dir = str(Path(sys.executable).parent)
    if Path(dbt_executable()).parent == Path(bin_dir) and bin_dir not in os.environ["PATH"]:
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    project = DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR)
    # Parsed when missing or stale, in every process. Not `project.prepare_if_dev()`: under
    # `dagster dev` (DAGSTER_IS_DEV_CLI, inherited by every child) it ran `dbt parse` in the
    # code server and again in every run worker (seconds of CPU per run), and rewrote
    # manifest.json in place while other processes read it (a half-written manifest fails
    # their import with a JSONDecodeError).
    if manifest_is_stale(project.manifest_path):
        project.preparer.prepare(project)
    return project


def apply_dbt_env(database_url: str) -> None:
    os.environ.update(dbt_env(database_url))
