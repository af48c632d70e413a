"""The initial schema: study, cases, images, readers, logins, reading sessions, answers, audit.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from mammoscreen.app.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = "the audit table is append-only"


def upgrade() -> None:
    op.create_table(
        "study",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("design", sa.String(20), nullable=False),
        sa.Column("modalities", sa.JSON, nullable=False),
        sa.Column("washout_days", sa.Float, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("layout", sa.String(20), nullable=False),
        sa.Column("lesion_marks", sa.Boolean, nullable=False),
        sa.Column("ai_model", sa.String(100), nullable=True),
        sa.Column("ai_run", sa.Text, nullable=True),
        sa.Column("images_dir", sa.Text, nullable=False),
        sa.Column("exam_list", sa.Text, nullable=False),
        sa.Column("exam_list_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("exam_index", sa.Integer, nullable=False, unique=True),
        sa.Column("training", sa.Boolean, nullable=False),
        sa.Column("label_left", sa.Integer, nullable=False),
        sa.Column("label_right", sa.Integer, nullable=False),
        sa.Column("ai_left", sa.Float, nullable=True),
        sa.Column("ai_right", sa.Float, nullable=True),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("public_id", sa.String(40), nullable=False, unique=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("view", sa.String(8), nullable=False),
        sa.Column("index_in_view", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("cols", sa.Integer, nullable=False),
        sa.Column("window_low", sa.Float, nullable=False),
        sa.Column("window_high", sa.Float, nullable=False),
        sa.Column("display_flip", sa.Boolean, nullable=False),
        sa.Column("overlay", sa.String(80), nullable=True),
    )
    op.create_index("ix_images_case_id", "images", ["case_id"])
    op.create_table(
        "readers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("password_temporary", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_web_sessions_reader_id", "web_sessions", ["reader_id"])
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
    )
    op.create_index("ix_login_attempts_at", "login_attempts", ["at"])
    op.create_table(
        "reading_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("modality", sa.String(20), nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("case_order", sa.JSON, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("completed_at", UTCDateTime, nullable=True),
        sa.UniqueConstraint("reader_id", "number"),
    )
    op.create_index("ix_reading_sessions_reader_id", "reading_sessions", ["reader_id"])
    op.create_table(
        "answers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reading_session_id", sa.Integer, sa.ForeignKey("reading_sessions.id"), nullable=False),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("modality", sa.String(20), nullable=False),
        sa.Column("score_left", sa.Integer, nullable=False),
        sa.Column("score_right", sa.Integer, nullable=False),
        sa.Column("birads_left", sa.String(4), nullable=False),
        sa.Column("birads_right", sa.String(4), nullable=False),
        sa.Column("marks", sa.JSON, nullable=False),
        sa.Column("time_ms", sa.Integer, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("locked", sa.Boolean, nullable=False),
        sa.Column("overlay_shown", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("reader_id", "case_id", "modality"),
    )
    op.create_index("ix_answers_reading_session_id", "answers", ["reading_session_id"])
    op.create_index("ix_answers_reader_id", "answers", ["reader_id"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
    )
    # The audit trail is append-only for everyone who goes through the database engine.
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_no_{event.lower()} BEFORE {event} ON audit "
                       f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")
    elif dialect == "postgresql":
        op.execute("CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END; $$")
        op.execute("CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit "
                   "FOR EACH ROW EXECUTE FUNCTION audit_append_only()")
        op.execute("CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()")


def downgrade() -> None:
    raise NotImplementedError("the initial schema has no downgrade: a study database is not taken apart")
