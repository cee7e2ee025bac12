"""story_requests: the inbound request queue read by story_request_sensor

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "story_requests",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        # Clients may insert only a payload: the id is then the row id, always a valid story id.
        sa.Column("story_id", sa.Text, unique=True, nullable=True),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("run_id", sa.Text),
        sa.Column("requested_by", sa.Text),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint(
            "status in ('pending', 'queued', 'running', 'succeeded', 'failed', 'rejected')",
            name="ck_story_requests_status",
        ),
    )
    op.create_index(
        "ix_story_requests_pending",
        "story_requests",
        ["priority", "id"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_story_requests_status", "story_requests", ["status"])
    op.create_index("ix_story_requests_created_at", "story_requests", ["created_at"])


def downgrade() -> None:
    op.drop_table("story_requests")
