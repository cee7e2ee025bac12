"""Storage on real Postgres and real object stores (local folder, moto's S3 server)."""

import logging

import pandas as pd
import pytest
import sqlalchemy as sa

from storygen_dagster.domain.models import Provenance, StoryRequest
from storygen_dagster.providers.offline import story_for
from storygen_dagster.storage import reads
from storygen_dagster.storage import repository as repo
from storygen_dagster.storage.dblog import StorageError
from storygen_dagster.storage.objects import ObjectStore

PROV = Provenance(provider="offline", model="m1", prompt_name="p", prompt_version="v1")


def _rows(engine, table):
    with engine.connect() as conn:
        return conn.execute(sa.text(f"select * from {table} order by 1, 2")).mappings().all()


def _save(engine, sid="idem-1", count=4):
    req = StoryRequest(story_id=sid, scene_count=count, child_name="Ida")
    repo.register_request(engine, sid, req, by="test")
    story = story_for(req)
    repo.save_structured_story(engine, sid, story, PROV, by="run:1")
    return story


def test_saving_twice_gives_same_rows_and_moves_updated_at(engine):
    _save(engine)
    first_story, first_scenes = _rows(engine, "stories"), _rows(engine, "scenes")
    _save(engine)
    second_story, second_scenes = _rows(engine, "stories"), _rows(engine, "scenes")
    assert len(second_scenes) == len(first_scenes) == 4
    ignore = {"updated_at"}
    for before, after in zip(first_scenes + first_story, second_scenes + second_story, strict=True):
        assert {k: v for k, v in before.items() if k not in ignore} == {
            k: v for k, v in after.items() if k not in ignore
        }
        assert after["updated_at"] > before["updated_at"]


def test_fewer_scenes_on_regeneration_removes_the_extra_rows(engine):
    _save(engine, count=5)
    _save(engine, count=3)
    assert [r["scene_number"] for r in _rows(engine, "scenes")] == [1, 2, 3]


def test_scene_batch_upsert_is_one_statement_and_keeps_text(engine, caplog):
    story = _save(engine)
    frame = pd.DataFrame(
        [
            {
                "story_id": "idem-1",
                "scene_number": s.scene_number,
                "text": "IGNORED",
                "moment": f"moment {s.scene_number}",
                "provenance": PROV.model_dump(),
            }
            for s in story.scenes
        ]
    )
    with caplog.at_level(logging.INFO, logger="storygen.db"):
        assert repo.upsert_scene_columns(engine, frame, ["moment"], "scene_moments", "run:2") == 4
    rows = _rows(engine, "scenes")
    assert [r["moment"] for r in rows] == [f"moment {i}" for i in range(1, 5)]
    assert [r["text"] for r in rows] == [s.text for s in story.scenes]
    assert set(rows[0]["provenance"]) == {"structured_story", "scene_moments"}
    line = [r for r in caplog.records if getattr(r, "operation", "") == "upsert_scene_moments"]
    assert len(line) == 1 and line[0].rows == 4 and line[0].ms >= 0


def test_constraint_violation_is_logged_with_context_and_nothing_is_half_written(engine, caplog):
    _save(engine)
    before = _rows(engine, "scenes")
    frame = pd.DataFrame(
        [
            {
                "story_id": "idem-1",
                "scene_number": n,
                "text": "t",
                "moment": "m",
                "provenance": PROV.model_dump(),
            }
            for n in (1, 7)  # 7 breaks ck_scenes_scene_number
        ]
    )
    with caplog.at_level(logging.INFO, logger="storygen.db"), pytest.raises(StorageError) as info:
        repo.upsert_scene_columns(engine, frame, ["moment"], "scene_moments", "run:3")
    assert "upsert_scene_moments failed for story_id=idem-1" in str(info.value)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].operation == "upsert_scene_moments"
    assert errors[0].story_id == "idem-1" and "ck_scenes_scene_number" in errors[0].error
    assert _rows(engine, "scenes") == before  # the transaction rolled back: scene 1 unchanged


def test_mark_failed_keeps_generated_fields(engine):
    _save(engine)
    repo.mark_failed(engine, "idem-1", "visual_profile: boom", by="run:4")
    row = _rows(engine, "stories")[0]
    assert row["status"] == "failed" and row["error"] == "visual_profile: boom"
    assert row["story_meta"] and row["title"]


def test_database_rejects_unsafe_story_id_even_past_the_application(engine):
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("insert into stories (story_id, request) values ('../x', '{}')"))


def test_local_object_store_is_content_addressed_and_atomic(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"))
    key = store.key_for("images", "s-1", b"png-bytes", ".png")
    assert key.startswith("images/s-1/") and key.endswith(".png") and len(key) > 70
    uri = store.put(key, b"png-bytes")
    assert store.put(key, b"png-bytes") == uri and store.get(uri) == b"png-bytes"
    assert not list((tmp_path / "objects").rglob("*.tmp"))
    with pytest.raises(ValueError, match="invalid"):
        store.key_for("images", "../s", b"x", ".png")
    with pytest.raises(ValueError, match=r"\.\."):
        store.get("images/../../etc/passwd")


@pytest.fixture()
def s3_bucket(s3_endpoint, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="books")
    return client


def test_s3_object_store_round_trip(s3_endpoint, s3_bucket):
    store = ObjectStore("s3://books/prod", {"client_kwargs": {"endpoint_url": s3_endpoint}})
    key = store.key_for("books", "s-2", b"<html>", ".html")
    uri = store.put(key, b"<html>")
    assert uri == f"s3://books/prod/{key}"
    assert store.get(uri) == b"<html>" and store.exists(key)
    listed = s3_bucket.list_objects_v2(Bucket="books")["Contents"]
    assert [o["Key"] for o in listed] == [f"prod/{key}"]


def test_pipeline_writes_images_and_book_to_s3(s3_endpoint, s3_bucket, instance, engine, resources):
    import dagster as dg

    from storygen_dagster.defs.resources import ObjectStoreResource
    from storygen_dagster.defs.story.assets import story_assets

    repo.register_request(engine, "s3-story", StoryRequest(story_id="s3-story", scene_count=3), "t")
    instance.add_dynamic_partitions("stories", ["s3-story"])
    resources = {
        **resources,
        "objects": ObjectStoreResource(url="s3://books/lib", endpoint_url=s3_endpoint),
    }
    assert dg.materialize(
        [story_assets], partition_key="s3-story", instance=instance, resources=resources
    ).success
    keys = sorted(o["Key"] for o in s3_bucket.list_objects_v2(Bucket="books")["Contents"])
    assert sum(k.startswith("lib/images/s3-story/") for k in keys) == 3 + 1  # scenes + sheet
    # The HTML book, the print PDF and the EPUB.
    books = sorted(k.rsplit(".", 1)[1] for k in keys if k.startswith("lib/books/s3-story/"))
    assert books == ["epub", "html", "pdf"]
    book = reads.story_overview(engine, "s3-story").iloc[0]["book"]
    assert book.startswith("s3://books/lib/books/s3-story/")


def test_migration_heads_read_from_the_files_are_alembics():
    from alembic.script import ScriptDirectory

    from storygen_dagster.storage import migrate

    config = migrate.alembic_config("postgresql://u@127.0.0.1/d")
    assert migrate.script_heads() == set(ScriptDirectory.from_config(config).get_heads())


def test_upgrade_skips_alembic_only_for_a_database_stamped_at_the_heads(database_url, engine):
    """The CLI and run workers check the version table instead of running alembic: a database
    stamped at an older revision is not taken for current."""
    from storygen_dagster.storage import migrate

    assert migrate.at_heads(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"update {migrate.VERSION_TABLE} set version_num = '0014_shared_limits'")
        )
    assert not migrate.at_heads(database_url)


def test_the_instance_asks_postgres_once_whether_a_table_it_found_exists(database_url, tmp_path):
    """dagster-postgres asks pg_class whether `dynamic_partitions` exists before every partition
    read; the CLI's instance asks once for a table it found, and again for one it did not (a
    migration may add it)."""
    import dagster as dg
    import yaml

    from storygen_dagster.instance import pool_storage_connections
    from storygen_dagster.storage.db import dagster_url

    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": {"postgres": {"postgres_url": dagster_url(database_url)}}})
    )
    instance = pool_storage_connections(dg.DagsterInstance.from_config(str(home)))
    storage = instance.event_log_storage
    engine = getattr(storage, "_engine", None)  # dagster-postgres has no public accessor
    assert isinstance(engine, sa.Engine)
    asked: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "pg_class" in statement:
            asked.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        instance.add_dynamic_partitions("stories", ["a"])
        for _ in range(3):
            assert instance.has_dynamic_partition("stories", "a")
            assert not instance.has_dynamic_partition("stories", "b")
        assert len(asked) == 1
        asked.clear()
        assert [storage.has_table("later_table") for _ in range(2)] == [False, False]
        assert len(asked) == 2
        with engine.begin() as conn:
            conn.execute(sa.text("create table later_table (x int)"))
        assert storage.has_table("later_table") and storage.has_table("later_table")
        assert len(asked) == 3
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
        instance.dispose()
