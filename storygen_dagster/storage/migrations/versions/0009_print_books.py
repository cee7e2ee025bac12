"""The print PDF and the EPUB of each story: their object URIs beside the HTML book's.

Revision ID: 0009_print_books
Revises: 0008_review_gate
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_print_books"
down_revision = "0008_review_gate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: no row is rewritten, and a story without print files reads as such.
    op.add_column("stories", sa.Column("pdf_uri", sa.Text))
    op.add_column("stories", sa.Column("epub_uri", sa.Text))


def downgrade() -> None:
    op.drop_column("stories", "epub_uri")
    op.drop_column("stories", "pdf_uri")
