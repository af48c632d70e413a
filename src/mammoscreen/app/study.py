"""A study directory: creating it from images and an exam list, opening it, adding readers.

Layout of ``STUDY_DIR``::

    study.json      which database holds the study (SQLite file beside it by default)
    study.sqlite    the database (WAL mode: study.sqlite-wal and -shm appear while it is open)
    overlays/       the AI's saliency maps per image, 8-bit PNGs in the original image frame

Images stay where they are: the study records their directory, names and SHA-256, and the server
refuses an image whose content changed since.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from .. import __version__
from ..data.exams import VIEWS, ExamListError, load_exam_list
from ..data.images import ImageFileError
from ..core.files import sha256_file, write_bytes_atomic, write_text_atomic
from ..core.safejson import load_json
from . import audit, design as designs
from .db import Case, Database, Image, Reader, ReadingSession, Study, head_revision, utcnow
from .errors import StudyError
from .pixels import decode_image, default_window, overlay_png, read_file_checked, safe_image_file
from .security import check_reader_name, hash_password, one_time_password

STUDY_FILE = "study.json"
SQLITE_FILE = "study.sqlite"
OVERLAYS_DIR = "overlays"
DATABASE_ENV = "MAMMOSCREEN_READER_APP_DATABASE"
FORMAT = 1
LAYOUTS = ("four-view", "single")
ROLES = ("reader", "admin")


@dataclass
class StudyHandle:
    """An open study: its directory and database."""

    directory: Path
    db: Database

    @property
    def overlays_dir(self) -> Path:
        return self.directory / OVERLAYS_DIR

    def settings(self) -> Study:
        with self.db.read() as s:
            study = s.get(Study, 1)
            if study is None:
                raise StudyError(f"{self.directory}: the database holds no study (was create-study interrupted?)")
            return study

    def close(self) -> None:
        self.db.dispose()


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _database_url(directory: Path, database_url: str | None) -> str:
    if database_url:
        return database_url
    return f"sqlite:///{(directory / SQLITE_FILE).resolve()}"


def open_study(study_dir: str | os.PathLike, database_url: str | None = None, upgrade: bool = True) -> StudyHandle:
    """Open an existing study; its database is brought to the newest schema (``upgrade``).

    A study created with ``--database-url`` needs the same URL again (or ``$MAMMOSCREEN_READER_APP_DATABASE``):
    ``study.json`` records it without the password.
    """
    directory = Path(study_dir)
    marker = directory / STUDY_FILE
    if not marker.is_file():
        raise StudyError(f"{directory}: not a reader-study directory (no {STUDY_FILE}); create one with "
                         "'mammoscreen reader-app create-study'")
    try:
        info = load_json(marker)
        kind = info["database"]
        if info.get("format") != FORMAT:
            raise ValueError(f"format {info.get('format')!r}")
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise StudyError(f"{marker}: not a study file this version understands ({e})") from None
    if kind == "sqlite":
        if not (directory / SQLITE_FILE).is_file():
            raise StudyError(f"{directory / SQLITE_FILE}: the study database is missing")
        url = _database_url(directory, None)
    else:
        url = database_url or os.environ.get(DATABASE_ENV)
        if not url:
            raise StudyError(f"{directory}: the study lives in an external database ({info.get('url')}); pass "
                             f"--database-url or set {DATABASE_ENV}")
    db = Database(url)
    revision = db.revision()
    head = head_revision()
    if revision != head:
        if revision is not None and not _known_revision(revision):
            db.dispose()
            raise StudyError(f"{directory}: the database schema ({revision}) is newer than this mammoscreen "
                             f"({__version__}) knows; upgrade mammoscreen")
        if not upgrade:
            db.dispose()
            raise StudyError(f"{directory}: the database schema is at {revision}, not {head}")
        db.upgrade()
    return StudyHandle(directory, db)


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    from .db import _alembic_config

    try:
        ScriptDirectory.from_config(_alembic_config(None)).get_revision(revision)
        return True
    except Exception:  # alembic raises several error types for an unknown revision
        return False


# ----------------------------------------------------------------------------------------------
# create-study
# ----------------------------------------------------------------------------------------------

def _breast_label(exam, index: int, side: str, source: str) -> int:
    labels = exam.cancer_label or {}
    value = labels.get(f"{side}_malignant")
    if value not in (0, 1):
        raise StudyError(f"{source}: exam {index} has no {side}_malignant label 0 or 1 in cancer_label (got "
                         f"{value!r}); every study case needs its truth (use --training for unlabelled exams only "
                         "if they are labelled too)")
    return int(value)


def create_study(study_dir: str | os.PathLike, images_dir: str | os.PathLike, exam_list: str | os.PathLike, *,
                 ai_run: str | os.PathLike | None = None, ai_model: str | None = None, design: str = "independent",
                 modalities: Sequence[str] | None = None, washout_days: float = 28.0, seed: int | None = None,
                 training: int = 0, layout: str = "four-view", lesion_marks: bool = True, name: str | None = None,
                 database_url: str | None = None, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
                 command: Sequence[str] | None = None) -> StudyHandle:
    """Create a reader study from 16-bit PNGs and an exam list (and optionally an AI run).

    Parameters
    ----------
    study_dir : a new (or empty) directory for the study.
    images_dir, exam_list : the images and the exam list (``.pkl`` read with the restricted unpickler, or
        ``.json``); every breast of a study case needs its ``*_malignant`` label.
    ai_run, ai_model : a ``mammoscreen run`` output directory and the model in it (default: its only one); gives
        the aided modality its per-breast scores and (with ``--save-maps``) saliency overlays.
    design : 'independent' (a session per modality, wash-out between) or 'sequential' (unaided then aided).
    modalities : default ``['unaided', 'aided']`` with an AI run, ``['unaided']`` without.
    washout_days : independent design: days between completing one session and opening the next.
    seed : seed of the case orders (default: drawn at random and recorded).
    training : number of exams used as training cases (shown first, excluded from analysis).
    layout : 'four-view' (standard hanging protocol) or 'single' (one view at a time) to start with.
    lesion_marks : let readers mark lesion locations (for localisation ROC / FROC).
    database_url : an SQLAlchemy URL (e.g. PostgreSQL) instead of the SQLite file in the study directory.
    """
    directory = Path(study_dir)
    images_dir, exam_list = Path(images_dir), Path(exam_list)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise StudyError(f"{directory}: exists and is not an empty directory; a study needs a new directory")
    if not images_dir.is_dir():
        raise StudyError(f"--images {images_dir}: not a directory")
    if modalities is None:
        modalities = [designs.UNAIDED, designs.AIDED] if ai_run is not None else [designs.UNAIDED]
    modalities = list(modalities)
    designs.check_design(design, modalities, washout_days)
    if designs.AIDED in modalities and ai_run is None:
        raise StudyError("the aided modality needs the AI's outputs: pass --ai-run RUN_DIR (a 'mammoscreen run' output "
                         "directory)")
    if layout not in LAYOUTS:
        raise StudyError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    try:
        exams = load_exam_list(exam_list)
    except (ExamListError, FileNotFoundError) as e:
        raise StudyError(str(e)) from None
    if len(exams) < 2:
        raise StudyError(f"{exam_list}: a reader study needs at least 2 exams, the list has {len(exams)}")
    seed = secrets.randbelow(2 ** 31) if seed is None else int(seed)
    if not 0 <= seed < 2 ** 31:
        raise StudyError(f"--seed must be between 0 and 2^31 - 1, got {seed}")
    training_exams = set(designs.choose_training(len(exams), training, seed))

    ai = None
    if ai_run is not None:
        from .ai import load_ai_run

        ai = load_ai_run(ai_run, exams, ai_model)
        for note in ai.notes:
            log(f"note: {note}")

    # Validate everything that can be validated before writing anything.
    truth: dict[int, tuple[int, int]] = {}
    for i, exam in enumerate(exams):
        for side, views in (("left", ("L-CC", "L-MLO")), ("right", ("R-CC", "R-MLO"))):
            if not any(exam.images.get(v) for v in views):
                raise StudyError(f"{exam_list}: exam {i} has no image of the {side} breast; every exam needs at least "
                                 "one image of each breast")
        truth[i] = (_breast_label(exam, i, "left", str(exam_list)), _breast_label(exam, i, "right", str(exam_list)))
        if ai is not None and not {"left", "right"} <= set(ai.scores.get(i, {})):
            raise StudyError(f"--ai-run: no AI score for both breasts of exam {i}; run the model on the study's "
                             "exam list")
    study_truth = [t for i, t in truth.items() if i not in training_exams]
    labels = [v for pair in study_truth for v in pair]
    if 0 not in labels or 1 not in labels:
        kind = "malignant" if 0 not in labels else "not malignant"
        raise StudyError(f"{exam_list}: the study cases' breasts are all {kind}; ROC analysis needs both")

    created_dir = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return _write_study(directory, images_dir, exam_list, exams, truth, training_exams, ai, design, modalities,
                            washout_days, seed, layout, lesion_marks, name or directory.resolve().name,
                            database_url, log, command)
    except BaseException:
        if created_dir:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for child in directory.iterdir():
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        raise


def _write_study(directory, images_dir, exam_list, exams, truth, training_exams, ai, design, modalities, washout_days,
                 seed, layout, lesion_marks, name, database_url, log, command) -> StudyHandle:
    overlays = directory / OVERLAYS_DIR
    overlays.mkdir()
    image_rows = []
    n_images = sum(len(names) for exam in exams for names in exam.images.values())
    done = 0
    overlay_problems: list[str] = []
    for i, exam in enumerate(exams):
        for view in VIEWS:
            for j, image_name in enumerate(exam.images.get(view, [])):
                path = safe_image_file(images_dir, image_name)
                try:
                    data, digest = read_file_checked(path)
                    array = decode_image(data, str(path))
                except ImageFileError as e:
                    raise StudyError(f"{e} (exam {i}, view {view}); fix or replace the image, then create the study "
                                     "again") from None
                low, high = default_window(array)
                public_id = secrets.token_hex(12)
                overlay = None
                if ai is not None:
                    try:
                        saliency = ai_overlay(ai, image_name, *array.shape)
                    except ValueError as e:
                        saliency = None
                        overlay_problems.append(str(e))
                    if saliency is not None:
                        overlay = f"{public_id}.png"
                        write_bytes_atomic(overlays / overlay, overlay_png(saliency, *array.shape))
                image_rows.append(dict(exam_index=i, view=view, index_in_view=j, name=image_name, sha256=digest,
                                       rows=int(array.shape[0]), cols=int(array.shape[1]), window_low=low,
                                       window_high=high, display_flip=exam.horizontal_flip == "YES",
                                       overlay=overlay, public_id=public_id))
                done += 1
                if done % 50 == 0 or done == n_images:
                    log(f"images checked: {done}/{n_images}")
    for problem in overlay_problems[:5]:
        log(f"note: no overlay: {problem}")
    if len(overlay_problems) > 5:
        log(f"note: {len(overlay_problems) - 5} more images without an overlay")

    url = _database_url(directory, database_url)
    marker = {"format": FORMAT, "database": "sqlite" if database_url is None else "external",
              "url": SQLITE_FILE if database_url is None else _redacted(database_url),
              "created_with": f"mammoscreen {__version__}"}
    db = Database(url)
    try:
        db.upgrade()
        now = utcnow()
        with db.write() as s:
            if s.scalar(select(func.count()).select_from(Study)):
                raise StudyError(f"the database {_redacted(url)} already holds a study; use an empty database")
            s.add(Study(id=1, name=name, design=design, modalities=list(modalities), washout_days=float(washout_days),
                        seed=seed, layout=layout, lesion_marks=bool(lesion_marks),
                        ai_model=ai.model if ai else None,
                        ai_run=str(Path(ai.directory).resolve().parent) if ai else None,
                        images_dir=str(images_dir.resolve()), exam_list=str(exam_list.resolve()),
                        exam_list_sha256=sha256_file(exam_list), created_at=now,
                        config={"mammoscreen": __version__, "training_exams": sorted(training_exams),
                                "ai_notes": ai.notes if ai else [], "command": list(command) if command else None}))
            case_ids = {}
            for i in range(len(exams)):
                case = Case(exam_index=i, training=i in training_exams, label_left=truth[i][0],
                            label_right=truth[i][1], ai_left=ai.scores[i]["left"] if ai else None,
                            ai_right=ai.scores[i]["right"] if ai else None)
                s.add(case)
                s.flush()
                case_ids[i] = case.id
            for row in image_rows:
                s.add(Image(case_id=case_ids[row.pop("exam_index")], **row))
            audit.record(s, "cli", "create-study", {
                "design": design, "modalities": list(modalities), "washout_days": washout_days, "seed": seed,
                "exams": len(exams), "training": len(training_exams), "images": len(image_rows),
                "ai_model": ai.model if ai else None, "exam_list_sha256": sha256_file(exam_list)}, now=now)
        write_text_atomic(directory / STUDY_FILE, json.dumps(marker, indent=2) + "\n")
    except BaseException:
        db.dispose()
        raise
    log(f"study created in {directory}: {len(exams)} exams ({len(training_exams)} training), {len(image_rows)} "
        f"images, design {design}, modalities {', '.join(modalities)}, seed {seed}")
    return StudyHandle(directory, db)


def ai_overlay(ai, image_name: str, rows: int, cols: int):
    from .ai import overlay_for_image

    return overlay_for_image(ai, image_name, rows, cols)


# ----------------------------------------------------------------------------------------------
# Readers
# ----------------------------------------------------------------------------------------------

def add_reader(study: StudyHandle, name: str, role: str = "reader", actor: str = "cli") -> str:
    """Add a reader (or an administrator) and return the one-time password to hand over.

    The reader must choose a new password at the first login. A reader's sessions (and case orders) are
    planned now, from the study seed and the reader's number.
    """
    check_reader_name(name)
    if role not in ROLES:
        raise StudyError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    password = one_time_password()
    password_hash = hash_password(password)
    with study.db.write() as s:
        settings = s.get(Study, 1)
        if s.scalar(select(Reader).where(func.lower(Reader.name) == name.lower())) is not None:
            raise StudyError(f"a reader named {name!r} already exists (names are case-insensitive); to hand out a new "
                             "password use 'reset-password'")
        number = s.scalar(select(func.count()).select_from(Reader).where(Reader.role == role)) or 0
        reader = Reader(name=name, role=role, number=int(number), password_hash=password_hash,
                        password_temporary=True, created_at=utcnow())
        s.add(reader)
        s.flush()
        if role == "reader":
            cases = s.execute(select(Case.id, Case.training).order_by(Case.exam_index)).all()
            plans = designs.plan_sessions(settings.design, settings.modalities, settings.seed, reader.number,
                                          [c.id for c in cases if c.training], [c.id for c in cases if not c.training])
            for plan in plans:
                s.add(ReadingSession(reader_id=reader.id, number=plan.number, modality=plan.modality, seed=plan.seed,
                                     case_order=plan.case_order))
        audit.record(s, actor, "add-reader", {"reader": name, "role": role, "number": int(number)})
    return password


def reset_password(study: StudyHandle, name: str, actor: str = "cli", ip: str | None = None) -> str:
    """A new one-time password for ``name`` (their logins are ended)."""
    from .db import WebSession

    password = one_time_password()
    password_hash = hash_password(password)
    with study.db.write() as s:
        reader = s.scalar(select(Reader).where(Reader.name == name))
        if reader is None:
            raise StudyError(f"no reader named {name!r}")
        reader.password_hash, reader.password_temporary = password_hash, True
        now = utcnow()
        for session in s.scalars(select(WebSession).where(WebSession.reader_id == reader.id,
                                                          WebSession.revoked_at.is_(None))):
            session.revoked_at = now
        audit.record(s, actor, "reset-password", {"reader": name}, ip=ip)
    return password


def describe(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else ""
