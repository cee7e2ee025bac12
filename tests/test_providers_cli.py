"""The issue's "done when", through the real CLI: `storygen demo --stories 2 --json` against
the fake chat and image endpoints, then `storygen run ID` makes no provider request and
`storygen run ID --fresh` makes new ones. Settings come from STORYGEN_* variables only."""

import json

import pytest
from click.testing import CliRunner

from storygen_dagster.cli import main
from storygen_dagster.logs import detach_handlers
from storygen_dagster.storage import call_cache
from tests.fakes.helpers import KEY, fake_provider_vars

pytest_plugins = ["tests.fakes.fixtures"]


@pytest.fixture()
def cli_env(fake, provider_env, database_url, tmp_path):
    env = {
        "STORYGEN_DATABASE_URL": database_url,
        "STORYGEN_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),  # a throwaway instance for this test
        **fake_provider_vars(fake),
    }
    (tmp_path / "dagster").mkdir()
    for name, value in env.items():
        provider_env.setenv(name, value)
    yield provider_env
    # The CLI attached a log handler to CliRunner's (now closed) stderr.
    detach_handlers()


def _invoke(*args):
    result = CliRunner().invoke(main, list(args))
    return result


def test_demo_then_run_reuses_every_call_then_fresh_pays_again(fake, cli_env, engine):
    result = _invoke("demo", "--stories", "2", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    books = payload["stories"]
    assert len(books) == 2 and all(b["book"] and b["scenes"] >= 3 for b in books)
    assert KEY not in result.output
    first = fake.count()
    scenes = sum(b["scenes"] for b in books)
    # Per story a character sheet and its scenes.
    assert fake.count("images") == 2 + scenes and fake.count("chat") == 2 * 3 + scenes

    story_id = books[0]["story_id"]
    rerun = _invoke("run", story_id, "--json")
    assert rerun.exit_code == 0, rerun.output
    assert fake.count() == first  # zero new provider requests

    fresh = _invoke("run", story_id, "--fresh", "--json")
    assert fresh.exit_code == 0, fresh.output
    assert fake.count() == first + 3 + 1 + 2 * books[0]["scenes"]
    ledger = call_cache.ledger(engine)
    assert (ledger["cost_usd"].astype(float) > 0).all() and set(ledger["status"]) == {"succeeded"}


def test_missing_key_is_a_clear_error_before_anything_runs(fake, cli_env, engine):
    cli_env.delenv("STORYGEN_IMAGE_API_KEY")
    result = _invoke("demo", "--stories", "1")
    assert result.exit_code != 0
    assert "STORYGEN_IMAGE_PROVIDER=together needs STORYGEN_IMAGE_API_KEY" in result.output
    assert fake.count() == 0
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from stories").scalar_one() == 0


def test_a_reference_mode_the_model_cannot_take_stops_before_anything_runs(fake, cli_env, engine):
    cli_env.setenv("STORYGEN_IMAGE_MODEL", "black-forest-labs/FLUX.1-schnell")
    cli_env.setenv("STORYGEN_IMAGE_REFERENCE", "image_url")
    result = _invoke("demo", "--stories", "1")
    assert result.exit_code != 0
    assert "STORYGEN_IMAGE_REFERENCE=image_url: model black-forest-labs/FLUX.1-schnell" in (
        result.output
    )
    assert fake.count() == 0
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from stories").scalar_one() == 0
