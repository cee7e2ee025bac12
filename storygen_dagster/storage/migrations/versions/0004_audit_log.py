"""audit_log: append-only change log of story and scene fields

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
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
    op.create_index("ix_audit_log_story", "audit_log", ["story_id", "at"])
    # Append-only in the database itself, not just by convention in the application.
    op.execute(
        """
        create function audit_log_append_only() returns trigger language plpgsql as $$
        begin
            raise exception 'audit_log is append-only (% refused)', tg_op;
        end $$;
        create trigger audit_log_no_update_delete before update or delete on audit_log
            for each row execute function audit_log_append_only();
        """
    )


def downgrade() -> None:
    op.execute("drop trigger if exists audit_log_no_update_delete on audit_log")
    op.execute("drop function if exists audit_log_append_only()")
    op.drop_table("audit_log")
