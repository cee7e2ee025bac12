"""The picture review (issue 16): picture_reviews holds every review of a scene picture (one
row per round: the first picture, then each redraw), and stories gain 'needs_review' (a picture
still failing the review's safety criterion: kept, not published).

Revision ID: 0015_picture_reviews
Revises: 0014_shared_limits
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0015_picture_reviews"
down_revision = "0014_shared_limits"
branch_labels = None
depends_on = None

_STORY = "'pending', 'generating', 'succeeded', 'failed', 'held', 'awaiting_review'"


def upgrade() -> None:
    op.drop_constraint("ck_stories_status", "stories", type_="check")
    op.create_check_constraint(
        "ck_stories_status", "stories", f"status in ({_STORY}, 'needs_review')"
    )
    op.create_table(
        "picture_reviews",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "story_id",
            sa.Text,
            sa.ForeignKey("stories.story_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("scene_number", sa.SmallInteger, nullable=False),
        sa.Column("round", sa.SmallInteger, nullable=False),
        sa.Column("image_sha256", sa.Text, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("safety_failed", sa.Boolean, nullable=False),
        sa.Column("verdicts", JSONB, nullable=False),
        sa.Column("suggested_fix", sa.Text, nullable=False, server_default=""),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("prompt_version", sa.Text),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Numeric(12, 6), nullable=False, server_default="0"),
        sa.Column("cached", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
        ),
        sa.UniqueConstraint("story_id", "scene_number", "round", "image_sha256", "updated_by"),
    )
    op.create_index("ix_picture_reviews_story", "picture_reviews", ["story_id", "scene_number"])


def downgrade() -> None:
    op.drop_table("picture_reviews")
    op.execute("update stories set status = 'failed' where status = 'needs_review'")
    op.drop_constraint("ck_stories_status", "stories", type_="check")
    op.create_check_constraint("ck_stories_status", "stories", f"status in ({_STORY})")
