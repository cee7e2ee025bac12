"""What models as they really answer cost: a 50-story batch through the real OpenAI-compatible
chat client against the loopback fake, once per model behaviour, against a prompt-following
model as the baseline in the same run. Per behaviour: books made, stories that needed a repair,
repair calls, chat calls, and chat calls as a ratio of the baseline's (schema-only models
choose their own scene count where the request leaves it open, so part of that ratio is
scenes, not faults; `repair_calls` is the fault's own cost).

    python -m bench.model_faults [STORIES]      # default 50; STORYGEN_DATABASE_URL or embedded
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import uuid
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from storygen_dagster.definitions import build_definitions
from storygen_dagster.defs.providers import OfflinePainterResource, WordListOnly
from storygen_dagster.defs.resources import ObjectStoreResource, StoryDatabase
from storygen_dagster.domain.examples import demo_requests
from storygen_dagster.domain.ids import content_hash
from storygen_dagster.pipeline import materialize_stories
from storygen_dagster.storage import call_cache, migrate, reads
from storygen_dagster.storage.db import start_embedded_postgres
from storygen_dagster.storage.repository import register_request
from tests.fakes.helpers import FAST, KEY, llm_resource
from tests.fakes.provider_server import FakeProvider
from tests.fakes.schema_model import QUIRKS


class DroppingScenes(FakeProvider):
    """A model that writes one scene too few in a share of its first story replies."""

    share = 0.2

    def _answer(self, body: dict, fault: dict):
        first_try = len(body["messages"]) == 2
        is_story = body["response_format"]["json_schema"]["name"] == "StructuredStory"
        roll = random.Random(content_hash(body)).random()
        if first_try and is_story and roll < self.share:
            fault = {**fault, "drop_scenes": 1}
        return super()._answer(body, fault)


BEHAVIOURS = {
    "prompt_following": (FakeProvider, False, frozenset()),
    "stray_keys": (FakeProvider, False, frozenset({"extra_keys"})),
    "schema_only": (FakeProvider, True, frozenset()),
    "schema_only_all_quirks": (FakeProvider, True, frozenset(QUIRKS)),
    "one_scene_short_20pct": (DroppingScenes, False, frozenset()),
}


def _database(server: str) -> str:
    name = f"sgbench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        make_url(server).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    admin.dispose()
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    return url


def run(behaviour: str, stories: int, server: str, tmp: Path) -> dict:
    cls, schema_only, quirks = BEHAVIOURS[behaviour]
    url = _database(server)
    with cls(api_key=KEY) as fake:
        fake.schema_only, fake.quirks = schema_only, quirks
        fake.reuse_images = True
        resources = {
            "db": StoryDatabase(database_url=url),
            "objects": ObjectStoreResource(url=str(tmp / behaviour)),
            "llm": llm_resource(fake),
            "images": OfflinePainterResource(width=320, height=240),
            "moderation": WordListOnly(),
        }
        defs = build_definitions(resources)
        engine = sa.create_engine(make_url(url).set(drivername="postgresql+psycopg"))
        requests = demo_requests(stories)
        for request in requests:
            register_request(engine, request.story_id, request, by="bench")
        home = tmp / f"dagster-{behaviour}"
        home.mkdir()
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            materialize_stories(defs, instance, [r.story_id for r in requests])
        overview = reads.story_overview(engine)
        ledger = call_cache.ledger(engine)
        chat = ledger[ledger["endpoint"] == "chat/completions"]
        # A repair is the second call of one (story, asset, scene).
        per_call = chat.groupby(["story_id", "asset", "scene_number"], dropna=False).size()
        repaired = per_call[per_call > 1].reset_index()["story_id"].nunique()
        engine.dispose()
        return {
            "behaviour": behaviour,
            "stories": stories,
            "books": int((overview["status"] == "succeeded").sum()),
            "stories_repaired": int(repaired),
            "repair_calls": int((per_call - 1).sum()),
            "chat_calls": int(fake.count("chat")),
            "failed_calls": int((chat["status"] == "failed").sum()),
        }


def main(argv: list[str]) -> None:
    stories = int(argv[0]) if argv else 50
    for name, value in FAST.items():
        os.environ.setdefault(name, value)
    with tempfile.TemporaryDirectory(prefix="sgbench-") as tmp:
        server = os.environ.get("STORYGEN_DATABASE_URL") or start_embedded_postgres(Path(tmp))
        rows = [run(b, stories, server, Path(tmp)) for b in BEHAVIOURS]
    base = rows[0]["chat_calls"]
    for row in rows:
        row["extra_calls_vs_baseline"] = round(row["chat_calls"] / base - 1, 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
