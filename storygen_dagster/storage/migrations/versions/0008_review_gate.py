"""The review gate: stories and requests gain 'awaiting_review', story_reviews holds each
reviewed story's state and latest decision, and audit_log rows carry a reviewer's note.

Revision ID: 0008_review_gate
Revises: 0006_story_catalog
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_review_gate"
down_revision = "0006_story_catalog"
branch_labels = None
depends_on = None

_now = sa.text("now()")
_STORY = "'pending', 'generating', 'succeeded', 'failed', 'held'"
_REQUEST = "'pending', 'queued', 'running', 'succeeded', 'failed', 'rejected'"


def upgrade() -> None:
    op.drop_constraint("ck_stories_status", "stories", type_="check")
    op.create_check_constraint(
        "ck_stories_status", "stories", f"status in ({_STORY}, 'awaiting_review')"
    )
    op.drop_constraint("ck_story_requests_status", "story_requests", type_="check")
    op.create_check_constraint(
        "ck_story_requests_status", "story_requests", f"status in ({_REQUEST}, 'awaiting_review')"
    )
    # Adding a nullable column rewrites no row: the append-only triggers are not involved.
    op.add_column("audit_log", sa.Column("note", sa.Text))
    op.create_table(
        "story_reviews",
        sa.Column(
            "story_id",
            sa.Text,
            sa.ForeignKey("stories.story_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("round", sa.Integer, nullable=False, server_default="1"),
        sa.Column("note", sa.Text),
        sa.Column("decided_by", sa.Text),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        # The run the review sensor asked for after the latest decision (null: not yet).
        sa.Column("run_key", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
        sa.CheckConstraint(
            "state in ('awaiting', 'approved', 'rejected')", name="ck_story_reviews_state"
        ),
    )
    op.create_index(
        "ix_story_reviews_to_launch",
        "story_reviews",
        ["state"],
        postgresql_where=sa.text("state in ('approved', 'rejected')"),
    )


def downgrade() -> None:
    op.drop_table("story_reviews")
    op.drop_column("audit_log", "note")
    op.execute("update story_requests set status = 'succeeded' where status = 'awaiting_review'")
    op.drop_constraint("ck_story_requests_status", "story_requests", type_="check")
    op.create_check_constraint(
        "ck_story_requests_status", "story_requests", f"status in ({_REQUEST})"
    )
    op.execute("update stories set status = 'generating' where status = 'awaiting_review'")
    op.drop_constraint("ck_stories_status", "stories", type_="check")
    op.create_check_constraint("ck_stories_status", "stories", f"status in ({_STORY})")
