"""stories.status gains 'held': a story whose content-safety check failed is kept, not
published (no book is built until it is edited and re-run).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("ck_stories_status", "stories", type_="check")
    op.create_check_constraint(
        "ck_stories_status",
        "stories",
        "status in ('pending', 'generating', 'succeeded', 'failed', 'held')",
    )


def downgrade() -> None:
    op.execute("update stories set status = 'failed' where status = 'held'")
    op.drop_constraint("ck_stories_status", "stories", type_="check")
    op.create_check_constraint(
        "ck_stories_status",
        "stories",
        "status in ('pending', 'generating', 'succeeded', 'failed')",
    )
