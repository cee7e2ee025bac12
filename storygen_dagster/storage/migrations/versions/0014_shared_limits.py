"""Limits shared by every worker: provider_pauses (a provider's "paused until" after a 429
with Retry-After) and budget_holds (the estimate of each paid call in flight, so the daily
budget check counts calls not yet in the ledger). The request-rate buckets are
pyrate-limiter's own tables.

Revision ID: 0014_shared_limits
Revises: 0008_review_gate
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_shared_limits"
down_revision = "0010_character_sheet"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_pauses",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "budget_holds",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("usd", sa.Numeric(12, 6), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )


def downgrade() -> None:
    op.drop_table("budget_holds")
    op.drop_table("provider_pauses")
