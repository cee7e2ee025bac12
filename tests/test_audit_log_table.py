"""audit_log is append-only in the database itself, not just by convention."""

import pytest
import sqlalchemy as sa

from storygen_dagster.storage import tables


def _insert(engine: sa.Engine) -> int:
    with engine.begin() as conn:
        return conn.execute(
            sa.insert(tables.audit_log)
            .values(
                story_id="s1",
                scene_number=2,
                asset="scene_text",
                field="text",
                old_value_sha256=None,
                new_value_sha256="ab" * 32,
                source="user",
                updated_by="alice",
                run_id=None,
            )
            .returning(tables.audit_log.c.id)
        ).scalar_one()


def test_audit_log_accepts_inserts_with_default_timestamp(engine):
    row_id = _insert(engine)
    with engine.connect() as conn:
        row = conn.execute(sa.select(tables.audit_log).where(tables.audit_log.c.id == row_id)).one()
    assert row.at is not None
    assert row.source == "user"


@pytest.mark.parametrize(
    "statement",
    [
        "update audit_log set updated_by = 'mallory'",
        "delete from audit_log",
        "truncate audit_log",
    ],
)
def test_audit_log_rejects_update_delete_truncate(engine, statement):
    _insert(engine)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text(statement))
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from audit_log")).scalar_one() == 1


def test_audit_log_rejects_unknown_source(engine):
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.insert(tables.audit_log).values(
                story_id="s1", asset="story_meta", field="tone", source="robot"
            )
        )


def test_stories_and_scenes_have_field_sources_and_fingerprints(engine):
    cols = {
        (c["name"])
        for t in ("stories", "scenes")
        for c in sa.inspect(engine).get_columns(t)
        if c["name"] in ("field_sources", "input_fingerprints")
    }
    assert cols == {"field_sources", "input_fingerprints"}


def test_save_story_field_writes_one_audit_row_per_change(engine):
    from storygen_dagster.domain.models import Provenance
    from storygen_dagster.storage import repository as repo

    with engine.begin() as conn:
        conn.execute(sa.insert(tables.stories).values(story_id="s2", request={}))
    prov = Provenance.model_construct(source="ai")
    repo.save_story_field(engine, "s2", "base_style", {"a": 1}, prov, "run:r1")
    repo.save_story_field(engine, "s2", "base_style", {"a": 1}, prov, "run:r2")  # unchanged
    repo.save_story_field(engine, "s2", "base_style", {"a": 2}, prov, "run:r3")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(tables.audit_log)
            .where(tables.audit_log.c.story_id == "s2")
            .order_by(tables.audit_log.c.id)
        ).all()
    assert [(r.field, r.run_id, r.source, r.old_value_sha256 is None) for r in rows] == [
        ("base_style", "r1", "ai", True),
        ("base_style", "r3", "ai", False),
    ]
    assert rows[1].old_value_sha256 == rows[0].new_value_sha256


def test_set_book_audits_book_uri_once_and_not_for_missing_story(engine):
    from storygen_dagster.storage import repository as repo

    with engine.begin() as conn:
        conn.execute(sa.insert(tables.stories).values(story_id="s3", request={}))
    repo.set_book(engine, "s3", "file:///b.pdf", "run:r1")
    repo.set_book(engine, "s3", "file:///b.pdf", "run:r2")  # unchanged: no row
    repo.set_book(engine, "nope", "file:///x.pdf", "run:r3")  # no story: no row
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(tables.audit_log.c.story_id, tables.audit_log.c.field).where(
                tables.audit_log.c.asset == "book"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("s3", "book_uri")]
