"""The character sheet: stories gain the sheet's object URI and the story's locked image seed,
scenes the seed each picture was drawn with.

Revision ID: 0010_character_sheet
Revises: 0008_review_gate
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_character_sheet"
down_revision = "0009_print_books"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns without defaults: no row is rewritten.
    op.add_column("stories", sa.Column("character_sheet_uri", sa.Text))
    op.add_column("stories", sa.Column("image_seed", sa.BigInteger))
    op.add_column("scenes", sa.Column("image_seed", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("scenes", "image_seed")
    op.drop_column("stories", "image_seed")
    op.drop_column("stories", "character_sheet_uri")
