"""The story tables (SQLAlchemy Core). Schema changes go through alembic migrations."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

STORY_STATUSES = (
    "pending",
    "generating",
    "succeeded",
    "failed",
    "held",
    "awaiting_review",
    "needs_review",  # a picture failed the review's safety criterion (migration 0015)
)
SOURCES = ("ai", "user")

_now = sa.text("now()")


def _audit_columns() -> list[sa.Column]:
    """Who/what produced a row, the same on stories and scenes."""
    return [
        sa.Column("provenance", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
        sa.Column("updated_by", sa.Text),
        sa.Column("source", sa.Text, nullable=False, server_default="ai"),
        sa.Column("model", sa.Text),
        sa.Column("prompt_version", sa.Text),
        # Per field: 'ai' or 'user', and the fingerprint of the inputs it was made from.
        sa.Column("field_sources", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column(
            "input_fingerprints", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
    ]


stories = sa.Table(
    "stories",
    metadata,
    sa.Column("story_id", sa.Text, primary_key=True),
    sa.Column("request", JSONB, nullable=False),
    sa.Column("child_profile", JSONB),
    sa.Column("side_character", JSONB),
    sa.Column("story_meta", JSONB),
    sa.Column("visual_profile", JSONB),
    sa.Column("base_style", JSONB),
    sa.Column("title", sa.Text),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("error", sa.Text),
    sa.Column("book_uri", sa.Text),
    sa.Column("pdf_uri", sa.Text),  # storybook_pdf (migration 0009)
    sa.Column("epub_uri", sa.Text),  # storybook_epub
    # The character sheet (migration 0010): its object URI and the story's locked image seed.
    sa.Column("character_sheet_uri", sa.Text),
    sa.Column("image_seed", sa.BigInteger),
    *_audit_columns(),
)

scenes = sa.Table(
    "scenes",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "story_id", sa.Text, sa.ForeignKey("stories.story_id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("scene_number", sa.SmallInteger, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("moment", sa.Text),
    sa.Column("image_prompt", sa.Text),
    sa.Column("image_uri", sa.Text),
    sa.Column("image_sha256", sa.Text),
    sa.Column("image_seed", sa.BigInteger),  # the seed the picture was drawn with (0010)
    *_audit_columns(),
    sa.UniqueConstraint("story_id", "scene_number", name="uq_scenes_story_scene"),
)

CALL_STATUSES = ("succeeded", "failed")

# The provider call cache and the per-call ledger (tokens, cost) in one table (migration 0002).
provider_calls = sa.Table(
    "provider_calls",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
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
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
)


REQUEST_STATUSES = (
    "pending",
    "queued",
    "running",
    "succeeded",
    "failed",
    "rejected",
    "awaiting_review",
)

story_requests = sa.Table(
    "story_requests",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("story_id", sa.Text, unique=True),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("run_id", sa.Text),
    sa.Column("requested_by", sa.Text),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
)


# Append-only in the database (migration 0004 triggers reject UPDATE/DELETE/TRUNCATE).
audit_log = sa.Table(
    "audit_log",
    metadata,
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
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("note", sa.Text),  # a reviewer's note on a review decision (migration 0008)
)


REVIEW_STATES = ("awaiting", "approved", "rejected")

# One row per story that needs review (migration 0008): its state and latest decision.
story_reviews = sa.Table(
    "story_reviews",
    metadata,
    sa.Column(
        "story_id", sa.Text, sa.ForeignKey("stories.story_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("round", sa.Integer, nullable=False, server_default="1"),
    sa.Column("note", sa.Text),
    sa.Column("decided_by", sa.Text),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("run_key", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
)

# A provider that answered 429 with Retry-After: every worker waits until `until` (0014).
provider_pauses = sa.Table(
    "provider_pauses",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
)

# The estimate of each paid call in flight under STORYGEN_MAX_COST_PER_DAY_USD (0014).
budget_holds = sa.Table(
    "budget_holds",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("usd", sa.Numeric(12, 6), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
)


# One row per review of a scene picture (migration 0015): round 0 is the first picture, 1.. its
# redraws; `verdicts` is {criterion: {"passed": bool, "reason": str}}.
picture_reviews = sa.Table(
    "picture_reviews",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "story_id", sa.Text, sa.ForeignKey("stories.story_id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("scene_number", sa.SmallInteger, nullable=False),
    sa.Column("round", sa.SmallInteger, nullable=False),
    sa.Column("image_sha256", sa.Text, nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("safety_failed", sa.Boolean, nullable=False),
    sa.Column("verdicts", JSONB, nullable=False),
    sa.Column("suggested_fix", sa.Text, nullable=False, server_default=""),
    sa.Column("reviewer", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("prompt_version", sa.Text),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cost_usd", sa.Numeric(12, 6), nullable=False, server_default="0"),
    sa.Column("cached", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    sa.UniqueConstraint("story_id", "scene_number", "round", "image_sha256", "updated_by"),
)
