"""provider_pauses: a provider's "paused until" after a 429 with Retry-After, seen by every
worker (the request-rate buckets themselves are pyrate-limiter's own tables).

Revision ID: 0014_provider_pauses
Revises: 0008_review_gate
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_provider_pauses"
down_revision = "0008_review_gate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_pauses",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("provider_pauses")
