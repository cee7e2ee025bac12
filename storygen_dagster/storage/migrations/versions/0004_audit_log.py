"""audit_log (append-only) and per-field source / input fingerprint columns

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_empty = sa.text("'{}'::jsonb")

# The application never updates or deletes audit rows; the trigger makes the database
# enforce that too, so a bug or a manual session cannot rewrite history.
_REJECT_FN = """
CREATE FUNCTION audit_log_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % rejected', TG_OP;
END;
$$
"""
_REJECT_TRIGGER = """
CREATE TRIGGER audit_log_append_only
BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change()
"""
# TRUNCATE bypasses row triggers, so it needs its own statement-level trigger.
_REJECT_TRUNCATE = """
CREATE TRIGGER audit_log_no_truncate
BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change()
"""


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("story_id", sa.Text, nullable=False),
        sa.Column("scene_number", sa.SmallInteger),
        sa.Column("asset", sa.Text, nullable=False),
        sa.Column("field", sa.Text, nullable=False),
        sa.Column("old_value_sha256", sa.Text),
        sa.Column("new_value_sha256", sa.Text),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text),
        sa.Column("run_id", sa.Text),
        sa.Column(
            "at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
        ),
        sa.CheckConstraint("source in ('ai', 'user')", name="ck_audit_log_source"),
    )
    # No FK to stories: the history must outlive a deleted story.
    op.create_index("ix_audit_log_story", "audit_log", ["story_id", "id"])
    op.execute(_REJECT_FN)
    op.execute(_REJECT_TRIGGER)
    op.execute(_REJECT_TRUNCATE)
    for table in ("stories", "scenes"):
        op.add_column(
            table, sa.Column("field_sources", JSONB, nullable=False, server_default=_empty)
        )
        op.add_column(
            table, sa.Column("input_fingerprints", JSONB, nullable=False, server_default=_empty)
        )


def downgrade() -> None:
    for table in ("stories", "scenes"):
        op.drop_column(table, "input_fingerprints")
        op.drop_column(table, "field_sources")
    op.drop_table("audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_reject_change()")
