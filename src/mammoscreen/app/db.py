"""The study database: tables, engine set-up (SQLite in WAL mode or any SQLAlchemy URL) and migrations.

Every answer is one committed transaction. On SQLite the database runs in WAL mode with
``synchronous=FULL`` (a commit is on disk before the server answers) and write transactions start with
``BEGIN IMMEDIATE``, so that concurrent writers queue on the lock (``busy_timeout``) instead of failing
when a read snapshot turns out stale. The schema is created and upgraded only by the Alembic migrations
in ``migrations/``; :data:`Base.metadata` describes the same schema (a test checks the two agree).
"""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, TypeDecorator,
                        UniqueConstraint, create_engine, event)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class Study(Base):
    """The study's settings (one row)."""

    __tablename__ = "study"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    design: Mapped[str] = mapped_column(String(20))  # 'independent' or 'sequential'
    modalities: Mapped[list] = mapped_column(JSON)  # e.g. ['unaided', 'aided']
    washout_days: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(Integer)
    layout: Mapped[str] = mapped_column(String(20))  # default hanging: 'four-view' or 'single'
    lesion_marks: Mapped[bool] = mapped_column(Boolean)
    ai_model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    ai_run: Mapped[str | None] = mapped_column(Text, nullable=True)
    images_dir: Mapped[str] = mapped_column(Text)
    exam_list: Mapped[str] = mapped_column(Text)
    exam_list_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    config: Mapped[dict] = mapped_column(JSON)  # anything else worth recording (versions, inputs' hashes)


class Case(Base):
    """One exam of the exam list; its two breasts are the MRMC cases. Truth never leaves the server."""

    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exam_index: Mapped[int] = mapped_column(Integer, unique=True)
    training: Mapped[bool] = mapped_column(Boolean)
    label_left: Mapped[int] = mapped_column(Integer)
    label_right: Mapped[int] = mapped_column(Integer)
    ai_left: Mapped[float | None] = mapped_column(Float, nullable=True)  # probability of malignancy, 0-1
    ai_right: Mapped[float | None] = mapped_column(Float, nullable=True)


class Image(Base):
    """One image of a case, served only by its random ``public_id``."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    view: Mapped[str] = mapped_column(String(8))
    index_in_view: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)  # the exam list's image name (never sent to readers)
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    cols: Mapped[int] = mapped_column(Integer)
    window_low: Mapped[float] = mapped_column(Float)
    window_high: Mapped[float] = mapped_column(Float)
    display_flip: Mapped[bool] = mapped_column(Boolean)
    overlay: Mapped[str | None] = mapped_column(String(80), nullable=True)  # file in STUDY/overlays/


class Reader(Base):
    """A person who logs in: a reader, or an administrator (study coordinator)."""

    __tablename__ = "readers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(10))  # 'reader' or 'admin'
    number: Mapped[int] = mapped_column(Integer)  # order of addition; counterbalances modality order
    password_hash: Mapped[str] = mapped_column(Text)
    password_temporary: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A login. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginAttempt(Base):
    """Every login attempt, for rate limiting (kept in the database so that it survives restarts)."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    name: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    success: Mapped[bool] = mapped_column(Boolean)


class ReadingSession(Base):
    """One sitting of the study design: a reader reads every case in a modality (or, sequential, both)."""

    __tablename__ = "reading_sessions"
    __table_args__ = (UniqueConstraint("reader_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ...
    modality: Mapped[str] = mapped_column(String(20))  # a modality, or 'sequential'
    seed: Mapped[int] = mapped_column(Integer)  # of the case order, recorded
    case_order: Mapped[list] = mapped_column(JSON)  # case ids, training cases first
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Answer(Base):
    """A reader's reading of one case in one modality: per breast a score (0-100) and BI-RADS, marks, time."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("reader_id", "case_id", "modality"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reading_session_id: Mapped[int] = mapped_column(ForeignKey("reading_sessions.id"), index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    modality: Mapped[str] = mapped_column(String(20))
    score_left: Mapped[int] = mapped_column(Integer)
    score_right: Mapped[int] = mapped_column(Integer)
    birads_left: Mapped[str] = mapped_column(String(4))
    birads_right: Mapped[str] = mapped_column(String(4))
    marks: Mapped[list] = mapped_column(JSON)
    time_ms: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    locked: Mapped[bool] = mapped_column(Boolean)  # sequential design: the unaided read once the AI was shown
    overlay_shown: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Audit(Base):
    """Append-only log of every answer and administrative action (UPDATE and DELETE are refused by triggers)."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)


# ----------------------------------------------------------------------------------------------
# Engine and sessions
# ----------------------------------------------------------------------------------------------

def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, full sync, foreign keys and immediate write transactions."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                  "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised by every test
            dbapi_connection.isolation_level = None  # SQLAlchemy's 'begin' event issues BEGIN itself
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection):
            immediate = connection.get_execution_options().get("write", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """An engine with two ways in: :meth:`read` and :meth:`write` (one committed transaction each)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time. Writers of this process queue on a lock (woken at once) rather than in
        # SQLite's busy handler, which polls with sleeps of up to 100 ms; other processes still wait on busy_timeout.
        self._write_lock = threading.Lock() if url.startswith("sqlite") else contextlib.nullcontext()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        # Closing (not rolling back) ends the transaction and keeps the loaded objects usable afterwards.
        with self._sessions() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed on leaving the block (rolled back on an exception)."""
        with self._write_lock, self._sessions() as session:
            session.connection(execution_options={"write": True})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def upgrade(self) -> None:
        """Create or upgrade the schema to the newest migration."""
        from alembic import command

        with self.engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "head")

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()


def _alembic_config(connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()
