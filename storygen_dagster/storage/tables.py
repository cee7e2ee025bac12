"""The story tables (SQLAlchemy Core). Schema changes go through alembic migrations."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

STORY_STATUSES = ("pending", "generating", "succeeded", "failed")
SOURCES = ("ai", "user")

_now = sa.text("now()")

stories = sa.Table(
    "stories",
    metadata,
    sa.Column("story_id", sa.Text, primary_key=True),
    sa.Column("request", JSONB, nullable=False),
    sa.Column("child_profile", JSONB),
    sa.Column("side_character", JSONB),
    sa.Column("story_meta", JSONB),
    sa.Column("visual_profile", JSONB),
    sa.Column("base_style", JSONB),
    sa.Column("title", sa.Text),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("error", sa.Text),
    sa.Column("book_uri", sa.Text),
    sa.Column("provenance", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("updated_by", sa.Text),
    sa.Column("source", sa.Text, nullable=False, server_default="ai"),
    sa.Column("model", sa.Text),
    sa.Column("prompt_version", sa.Text),
    sa.Column("field_sources", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("input_fingerprints", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
)

scenes = sa.Table(
    "scenes",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "story_id", sa.Text, sa.ForeignKey("stories.story_id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("scene_number", sa.SmallInteger, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("moment", sa.Text),
    sa.Column("image_prompt", sa.Text),
    sa.Column("image_uri", sa.Text),
    sa.Column("image_sha256", sa.Text),
    sa.Column("provenance", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("updated_by", sa.Text),
    sa.Column("source", sa.Text, nullable=False, server_default="ai"),
    sa.Column("model", sa.Text),
    sa.Column("prompt_version", sa.Text),
    sa.Column("field_sources", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("input_fingerprints", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.UniqueConstraint("story_id", "scene_number", name="uq_scenes_story_scene"),
)

# Append-only in the database (migration 0004 triggers reject UPDATE/DELETE/TRUNCATE).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("story_id", sa.Text, nullable=False),
    sa.Column("scene_number", sa.SmallInteger),
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column("field", sa.Text, nullable=False),
    sa.Column("old_value_sha256", sa.Text),
    sa.Column("new_value_sha256", sa.Text),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("updated_by", sa.Text),
    sa.Column("run_id", sa.Text),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
)
