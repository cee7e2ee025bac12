"""provider_calls: the call cache and per-call cost ledger

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_calls",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        # sha256 of provider, model, endpoint and the canonical request body.
        sa.Column("cache_key", sa.Text, nullable=False, unique=True),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("story_id", sa.Text),
        sa.Column("asset", sa.Text),
        sa.Column("scene_number", sa.SmallInteger),
        sa.Column("request", JSONB, nullable=False),
        sa.Column("response", JSONB),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("latency_ms", sa.Float),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Numeric(12, 6), nullable=False, server_default="0"),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint("status in ('succeeded', 'failed')", name="ck_provider_calls_status"),
        # A succeeded row always has its response: nothing partial looks complete.
        sa.CheckConstraint(
            "status <> 'succeeded' or response is not null", name="ck_provider_calls_response"
        ),
    )
    op.create_index("ix_provider_calls_story_id", "provider_calls", ["story_id"])
    op.create_index("ix_provider_calls_created_at", "provider_calls", ["created_at"])


def downgrade() -> None:
    op.drop_table("provider_calls")
