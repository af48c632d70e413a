"""Exports of a study's answers and the administration page's progress table.

* ``imrmc``: the iMRMC text format ``mammoscreen mrmc`` reads - one case per breast (``<exam><L|R>``),
  score = the reader's probability of malignancy (0-100), modalities ``unaided``/``aided``, truth rows;
  study cases only (training cases excluded), readers who have read every case in every modality;
* ``pkl``: the meta-repository's ``results.pkl`` layout for one modality - ``case_ID``, ``side``, ``label``,
  ``<reader>_POM`` (probability 0-1) and ``AI_<model>_POM`` - which ``mammoscreen reader-study`` and
  ``mrmc`` read;
* ``csv``: every answer, one row per breast, with its timestamps, time spent, revisions and marks, training
  cases included (column ``training``) and the truth.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.files import write_bytes_atomic
from .db import Answer, Case, Database, Reader, ReadingSession, Study
from .errors import StudyError

EXPORT_FORMATS = ("imrmc", "csv", "pkl")
SIDES = (("left", "L"), ("right", "R"))
CSV_COLUMNS = ["reader", "session", "session_modality", "modality", "position", "exam_index", "side", "case",
               "training", "truth", "score", "birads", "marks", "time_ms", "revision", "locked", "overlay_shown",
               "created_at", "updated_at"]


def case_id(exam_index: int, side_letter: str) -> str:
    return f"{exam_index}{side_letter}"


def answers_frame(s: Session) -> pd.DataFrame:
    """Every answer, one row per breast (see :data:`CSV_COLUMNS`)."""
    cases = {c.id: c for c in s.scalars(select(Case))}
    readers = {r.id: r.name for r in s.scalars(select(Reader))}
    sessions = {rs.id: rs for rs in s.scalars(select(ReadingSession))}
    rows = []
    for a in s.scalars(select(Answer).order_by(Answer.id)):
        case, rs = cases[a.case_id], sessions[a.reading_session_id]
        for side, letter in SIDES:
            rows.append({
                "reader": readers[a.reader_id], "session": rs.number, "session_modality": rs.modality,
                "modality": a.modality, "position": rs.case_order.index(case.id) + 1, "exam_index": case.exam_index,
                "side": letter, "case": case_id(case.exam_index, letter), "training": int(case.training),
                "truth": getattr(case, f"label_{side}"), "score": getattr(a, f"score_{side}"),
                "birads": getattr(a, f"birads_{side}"),
                "marks": json.dumps([m for m in a.marks if m["side"] == side], separators=(",", ":")),
                "time_ms": a.time_ms, "revision": a.revision, "locked": int(a.locked),
                "overlay_shown": int(a.overlay_shown), "created_at": a.created_at.isoformat(),
                "updated_at": a.updated_at.isoformat()})
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


@dataclass
class StudyScores:
    """Fully crossed scores of the study cases: ``scores[modality, reader, case]`` (0-100)."""

    modalities: list[str]
    readers: list[str]
    cases: list[str]
    truth: np.ndarray
    scores: np.ndarray
    ai: np.ndarray | None  # the AI's probability per case, or None
    ai_model: str | None
    excluded: dict[str, str]  # reader -> why left out


def study_scores(s: Session) -> StudyScores:
    """The analysable part of the study: readers who read every study case in every modality."""
    study = s.get(Study, 1)
    cases = [c for c in s.scalars(select(Case).where(Case.training.is_(False)).order_by(Case.exam_index))]
    case_ids = [case_id(c.exam_index, letter) for c in cases for _, letter in SIDES]
    truth = np.array([getattr(c, f"label_{side}") for c in cases for side, _ in SIDES], dtype=np.int8)
    column = {(c.id, side): k for k, (c, (side, _)) in enumerate((c, sd) for c in cases for sd in SIDES)}
    modalities = list(study.modalities)
    readers, blocks, excluded = [], [], {}
    for reader in s.scalars(select(Reader).where(Reader.role == "reader").order_by(Reader.number)):
        block = np.full((len(modalities), len(case_ids)), np.nan)
        for a in s.scalars(select(Answer).where(Answer.reader_id == reader.id)):
            if a.modality in modalities and (a.case_id, "left") in column:
                m = modalities.index(a.modality)
                block[m, column[(a.case_id, "left")]] = a.score_left
                block[m, column[(a.case_id, "right")]] = a.score_right
        missing = int(np.isnan(block).sum())
        if missing:
            excluded[reader.name] = f"{missing // 2} of {block.size // 2} readings missing"
            continue
        readers.append(reader.name)
        blocks.append(block)
    scores = np.stack(blocks, axis=1) if blocks else np.empty((len(modalities), 0, len(case_ids)))
    ai = None
    if study.ai_model is not None:
        ai = np.array([getattr(c, f"ai_{side}") for c in cases for side, _ in SIDES], dtype=float)
    return StudyScores(modalities, readers, case_ids, truth, scores, ai, study.ai_model, excluded)


def imrmc_text(data: StudyScores, study_name: str) -> str:
    if not data.readers:
        raise StudyError("no reader has read every study case in every modality yet; nothing to export")
    lines = [f"mammoscreen reader study {study_name}: probability of malignancy (0-100) per breast",
             f"N0:{int((data.truth == 0).sum())}", f"N1:{int((data.truth == 1).sum())}",
             f"NR:{len(data.readers)}", f"NM:{len(data.modalities)}", "BEGIN DATA:"]
    lines += [f"-1,{case},truth,{int(t)}" for case, t in zip(data.cases, data.truth)]
    for m, modality in enumerate(data.modalities):
        for r, reader in enumerate(data.readers):
            lines += [f"{reader},{case},{modality},{int(data.scores[m, r, k])}" for k, case in enumerate(data.cases)]
    return "\n".join(lines) + "\n"


def results_table(data: StudyScores, modality: str) -> pd.DataFrame:
    """The ``results.pkl`` layout for one modality (probabilities 0-1)."""
    if modality not in data.modalities:
        raise StudyError(f"no modality {modality!r}; the study has {', '.join(data.modalities)}")
    if not data.readers:
        raise StudyError("no reader has read every study case in every modality yet; nothing to export")
    m = data.modalities.index(modality)
    frame = pd.DataFrame({"case_ID": [int(c[:-1]) for c in data.cases], "side": [c[-1] for c in data.cases],
                          "label": data.truth.astype(int)})
    for r, reader in enumerate(data.readers):
        frame[f"{reader}_POM"] = data.scores[m, r] / 100.0
    if data.ai is not None:
        frame[f"AI_{data.ai_model}_POM"] = data.ai
    return frame


def export_bytes(db: Database, fmt: str, modality: str | None = None) -> tuple[bytes, str, list[str]]:
    """(file content, suggested file name, notes) of an export."""
    if fmt not in EXPORT_FORMATS:
        raise StudyError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    with db.read() as s:
        study = s.get(Study, 1)
        if fmt == "csv":
            frame = answers_frame(s)
            return frame.to_csv(index=False).encode(), "answers.csv", []
        data = study_scores(s)
    notes = [f"reader {name} left out: {why}" for name, why in data.excluded.items()]
    if fmt == "imrmc":
        return imrmc_text(data, study.name).encode(), "study.imrmc", notes
    modality = modality or data.modalities[0]
    buffer = io.BytesIO()
    results_table(data, modality).to_pickle(buffer, compression=None, protocol=4)
    return buffer.getvalue(), f"results_{modality}.pkl", notes


def export_study(db: Database, fmt: str, output: str | Path, modality: str | None = None) -> list[str]:
    """Write an export to ``output`` (atomically); returns notes (e.g. readers left out)."""
    data, _, notes = export_bytes(db, fmt, modality)
    write_bytes_atomic(output, data)
    return notes


# ----------------------------------------------------------------------------------------------
# Progress (administration page)
# ----------------------------------------------------------------------------------------------

def progress(s: Session, study: Study, now: datetime) -> list[dict[str, Any]]:
    from .reading import session_states

    rows = []
    for reader in s.scalars(select(Reader).order_by(Reader.role.desc(), Reader.number)):
        states = session_states(s, study, reader, now) if reader.role == "reader" else []
        time_ms = sum(a.time_ms for a in s.scalars(select(Answer).where(Answer.reader_id == reader.id)))
        rows.append({"name": reader.name, "role": reader.role, "temporary": reader.password_temporary,
                     "sessions": [{"number": st.session.number, "modality": st.session.modality, "status": st.status,
                                   "answered": st.answered, "total": st.total, "opens_at": st.opens_at,
                                   "started_at": st.session.started_at, "completed_at": st.session.completed_at}
                                  for st in states],
                     "minutes": round(time_ms / 60000, 1)})
    return rows
