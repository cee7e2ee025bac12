"""story_catalog: one row per finished story, written by the story_catalog asset through the
Postgres IO manager.

Revision ID: 0006_story_catalog
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_story_catalog"
down_revision = "0005"
branch_labels = None
depends_on = None

_now = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "story_catalog",
        sa.Column(
            "story_id",
            sa.Text,
            sa.ForeignKey("stories.story_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("child_name", sa.Text, nullable=False),
        sa.Column("age", sa.SmallInteger, nullable=False),
        sa.Column("value_to_teach", sa.Text, nullable=False),
        sa.Column("scene_count", sa.SmallInteger, nullable=False),
        sa.Column("book_uri", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
        sa.Column("updated_by", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("story_catalog")
