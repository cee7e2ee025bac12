"""stories and scenes

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_now = sa.text("now()")


def _audit_columns() -> list[sa.Column]:
    return [
        sa.Column("provenance", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
        sa.Column("updated_by", sa.Text),
        sa.Column("source", sa.Text, nullable=False, server_default="ai"),
        sa.Column("model", sa.Text),
        sa.Column("prompt_version", sa.Text),
    ]


def upgrade() -> None:
    op.create_table(
        "stories",
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
        *_audit_columns(),
        sa.CheckConstraint(r"story_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'", name="ck_stories_story_id"),
        sa.CheckConstraint(
            "status in ('pending', 'generating', 'succeeded', 'failed')", name="ck_stories_status"
        ),
        sa.CheckConstraint("source in ('ai', 'user')", name="ck_stories_source"),
    )
    op.create_index("ix_stories_story_meta", "stories", ["story_meta"], postgresql_using="gin")
    op.create_index(
        "ix_stories_child_profile", "stories", ["child_profile"], postgresql_using="gin"
    )
    op.create_index(
        "ix_stories_value_to_teach", "stories", [sa.text("(story_meta->>'value_to_teach')")]
    )
    op.create_index("ix_stories_status", "stories", ["status"])
    op.create_index("ix_stories_created_at", "stories", ["created_at"])

    op.create_table(
        "scenes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "story_id",
            sa.Text,
            sa.ForeignKey("stories.story_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("scene_number", sa.SmallInteger, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("moment", sa.Text),
        sa.Column("image_prompt", sa.Text),
        sa.Column("image_uri", sa.Text),
        sa.Column("image_sha256", sa.Text),
        *_audit_columns(),
        sa.UniqueConstraint("story_id", "scene_number", name="uq_scenes_story_scene"),
        sa.CheckConstraint("scene_number between 1 and 5", name="ck_scenes_scene_number"),
        sa.CheckConstraint("length(text) > 0", name="ck_scenes_text_not_empty"),
        sa.CheckConstraint("source in ('ai', 'user')", name="ck_scenes_source"),
    )
    op.create_index("ix_scenes_created_at", "scenes", ["created_at"])


def downgrade() -> None:
    op.drop_table("scenes")
    op.drop_table("stories")
