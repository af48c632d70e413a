"""What a reader can see and do, independent of HTTP: sessions, cases, answers.

Rules the server enforces here (the web layer only maps the exceptions to status codes):

* a reader reaches only their own reading sessions (anything else is "not found");
* a session opens when the previous one is completed and the wash-out period has passed;
* cases are read in the session's recorded order; a reader may go back (and revise) but not skip ahead;
* the AI (score and overlay) is shown only in the aided modality - in the sequential design only after the
  unaided answer of that case has been given, which locks it;
* the truth is never part of anything returned here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit, design as designs
from .db import Answer, Case, Image, Reader, ReadingSession, Study

MAX_MARKS = 20
MAX_ELAPSED_MS = 24 * 3600 * 1000


class AppError(Exception):
    status = 400


class NotFound(AppError):
    status = 404


class Conflict(AppError):
    status = 409


class BadInput(AppError):
    status = 400


# ----------------------------------------------------------------------------------------------
# Sessions
# ----------------------------------------------------------------------------------------------

@dataclass
class SessionState:
    session: ReadingSession
    status: str  # 'open', 'completed', 'waiting' (wash-out), 'locked' (previous session unfinished)
    opens_at: datetime | None
    answered: int
    total: int


def _sessions_of(s: Session, reader: Reader) -> list[ReadingSession]:
    return list(s.scalars(select(ReadingSession).where(ReadingSession.reader_id == reader.id)
                          .order_by(ReadingSession.number)))


def _answered_cases(s: Session, rs: ReadingSession) -> set[int]:
    """Cases whose reading in this session is complete (sequential: the aided answer is given)."""
    modality = designs.AIDED if rs.modality == designs.SEQUENTIAL else rs.modality
    return set(s.scalars(select(Answer.case_id).where(Answer.reading_session_id == rs.id,
                                                      Answer.modality == modality)))


def session_states(s: Session, study: Study, reader: Reader, now: datetime) -> list[SessionState]:
    states = []
    previous: ReadingSession | None = None
    for rs in _sessions_of(s, reader):
        answered = len(_answered_cases(s, rs))
        opens = None
        if rs.completed_at is not None:
            status = "completed"
        elif previous is not None and previous.completed_at is None:
            status = "locked"
        else:
            opens = designs.opens_at(previous.completed_at, study.washout_days) if previous is not None else None
            status = "waiting" if opens is not None and now < opens else "open"
        states.append(SessionState(rs, status, opens, answered, len(rs.case_order)))
        previous = rs
    return states


def open_session(s: Session, study: Study, reader: Reader, session_id: int, now: datetime) -> ReadingSession:
    """The reader's session ``session_id`` if it is open for reading (NotFound / Conflict otherwise)."""
    for state in session_states(s, study, reader, now):
        if state.session.id == session_id:
            if state.status == "open":
                return state.session
            if state.status == "waiting":
                raise Conflict(f"this session opens on {state.opens_at:%Y-%m-%d %H:%M} UTC (wash-out period)")
            if state.status == "locked":
                raise Conflict("complete your previous session first")
            raise Conflict("this session is completed")
    raise NotFound("no such session")


def current_position(s: Session, rs: ReadingSession) -> int:
    """1-based position of the first case not yet answered (len + 1 when all are)."""
    done = _answered_cases(s, rs)
    for position, case_id in enumerate(rs.case_order, 1):
        if case_id not in done:
            return position
    return len(rs.case_order) + 1


def _case_at(s: Session, rs: ReadingSession, position: int) -> Case:
    if not 1 <= position <= len(rs.case_order):
        raise NotFound("no such case")
    if position > current_position(s, rs):
        raise Conflict("answer the cases in order: this one is not reached yet")
    case = s.get(Case, rs.case_order[position - 1])
    if case is None:
        raise NotFound("no such case")
    return case


def _own_answer(s: Session, reader: Reader, case: Case, modality: str) -> Answer | None:
    return s.scalar(select(Answer).where(Answer.reader_id == reader.id, Answer.case_id == case.id,
                                         Answer.modality == modality))


def _phase(s: Session, rs: ReadingSession, reader: Reader, case: Case) -> str:
    """The modality the reader answers now for this case."""
    if rs.modality != designs.SEQUENTIAL:
        return rs.modality
    return designs.AIDED if _own_answer(s, reader, case, designs.UNAIDED) is not None else designs.UNAIDED


def answer_dict(answer: Answer | None, images: dict[int, str] | None = None) -> dict[str, Any] | None:
    if answer is None:
        return None
    return {"modality": answer.modality, "left": {"score": answer.score_left, "birads": answer.birads_left},
            "right": {"score": answer.score_right, "birads": answer.birads_right},
            "marks": answer.marks, "revision": answer.revision, "locked": answer.locked,
            "time_ms": answer.time_ms}


def case_payload(s: Session, study: Study, rs: ReadingSession, reader: Reader, position: int,
                 now: datetime) -> dict[str, Any]:
    """Everything the reading screen needs for one case - and nothing the reader must not see."""
    case = _case_at(s, rs, position)
    if rs.started_at is None:
        rs.started_at = now
    phase = _phase(s, rs, reader, case)
    images = list(s.scalars(select(Image).where(Image.case_id == case.id).order_by(Image.view, Image.index_in_view)))
    aided = phase == designs.AIDED
    payload: dict[str, Any] = {
        "session": rs.id, "position": position, "n_cases": len(rs.case_order),
        "current": current_position(s, rs), "training": case.training, "phase": phase,
        "design": study.design, "layout": study.layout, "lesion_marks": study.lesion_marks,
        "images": [{"id": im.public_id, "view": im.view, "index": im.index_in_view, "width": im.cols,
                    "height": im.rows, "levels": _levels(im), "flip": im.display_flip,
                    "window": [im.window_low, im.window_high], "overlay": bool(aided and im.overlay)}
                   for im in images],
        "ai": None,
        "answer": answer_dict(_own_answer(s, reader, case, phase)),
        "unaided_answer": None,
    }
    if aided and case.ai_left is not None:
        payload["ai"] = {"model": study.ai_model, "left": round(100 * case.ai_left, 1),
                         "right": round(100 * case.ai_right, 1)}
    if rs.modality == designs.SEQUENTIAL and aided:
        payload["unaided_answer"] = answer_dict(_own_answer(s, reader, case, designs.UNAIDED))
    return payload


def _levels(image: Image) -> list[list[int]]:
    from .pixels import level_shapes

    return [[c, r] for r, c in level_shapes(image.rows, image.cols)]


# ----------------------------------------------------------------------------------------------
# Answers
# ----------------------------------------------------------------------------------------------

def _int_in(value: Any, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or int(value) != value:
        raise BadInput(f"{what} must be a whole number from {low} to {high}")
    value = int(value)
    if not low <= value <= high:
        raise BadInput(f"{what} must be a whole number from {low} to {high}")
    return value


def _breast(body: dict[str, Any], side: str) -> tuple[int, str]:
    value = body.get(side)
    if not isinstance(value, dict):
        raise BadInput(f"the {side} breast needs a score and a BI-RADS category")
    score = _int_in(value.get("score"), 0, 100, f"{side} breast: the probability of malignancy")
    birads = value.get("birads")
    if not isinstance(birads, str) or birads not in designs.BIRADS:
        raise BadInput(f"{side} breast: BI-RADS must be one of {', '.join(designs.BIRADS)}")
    return score, birads


def _marks(body: dict[str, Any], images: dict[str, Image], allowed: bool) -> list[dict[str, Any]]:
    marks = body.get("marks", [])
    if not isinstance(marks, list):
        raise BadInput("marks must be a list")
    if marks and not allowed:
        raise BadInput("this study does not record lesion marks")
    if len(marks) > MAX_MARKS:
        raise BadInput(f"at most {MAX_MARKS} marks per case")
    out = []
    for mark in marks:
        if not isinstance(mark, dict) or not isinstance(mark.get("image"), str) or mark["image"] not in images:
            raise BadInput("a mark must name one of this case's images")
        image = images[mark["image"]]
        x, y = mark.get("x"), mark.get("y")
        if (isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, (int, float))
                or not isinstance(y, (int, float)) or not (0 <= x < image.cols) or not (0 <= y < image.rows)):
            raise BadInput("a mark's x and y must lie inside its image (pixels of the stored image)")
        rating = _int_in(mark.get("rating"), 0, 100, "a mark's confidence")
        out.append({"image": image.public_id, "view": image.view, "side": "left" if image.view[0] == "L" else "right",
                    "x": round(float(x), 1), "y": round(float(y), 1), "rating": rating})
    return out


def save_answer(s: Session, study: Study, rs: ReadingSession, reader: Reader, position: int, body: Any,
                now: datetime, ip: str | None = None) -> Answer:
    """Validate and add one answer to the caller's transaction (which commits it)."""
    if not isinstance(body, dict):
        raise BadInput("the answer must be a JSON object")
    case = _case_at(s, rs, position)
    phase = _phase(s, rs, reader, case)
    if body.get("phase") != phase:
        if rs.modality == designs.SEQUENTIAL and phase == designs.AIDED and body.get("phase") == designs.UNAIDED:
            raise Conflict("the unaided answer of this case is locked: the AI has been shown")
        raise Conflict(f"this case is being read {phase}, not {body.get('phase')!r}; reload the page")
    score_left, birads_left = _breast(body, "left")
    score_right, birads_right = _breast(body, "right")
    images = {im.public_id: im for im in s.scalars(select(Image).where(Image.case_id == case.id))}
    marks = _marks(body, images, study.lesion_marks)
    elapsed = _int_in(body.get("elapsed_ms", 0), 0, MAX_ELAPSED_MS, "elapsed_ms")
    overlay_shown = bool(body.get("overlay_shown", False)) and phase == designs.AIDED
    new = {"left": {"score": score_left, "birads": birads_left},
           "right": {"score": score_right, "birads": birads_right}, "marks": marks}
    answer = _own_answer(s, reader, case, phase)
    old = answer_dict(answer)
    if answer is None:
        answer = Answer(reading_session_id=rs.id, reader_id=reader.id, case_id=case.id, modality=phase,
                        score_left=score_left, score_right=score_right, birads_left=birads_left,
                        birads_right=birads_right, marks=marks, time_ms=elapsed, revision=1,
                        locked=rs.modality == designs.SEQUENTIAL and phase == designs.UNAIDED,
                        overlay_shown=overlay_shown, created_at=now, updated_at=now)
        s.add(answer)
        try:
            s.flush()
        except IntegrityError:  # a concurrent request of the same reader won the race (other backends)
            raise Conflict("this answer was just saved by another request; reload the page") from None
    else:
        if answer.locked:
            raise Conflict("this answer is locked")
        answer.score_left, answer.score_right = score_left, score_right
        answer.birads_left, answer.birads_right = birads_left, birads_right
        answer.marks = marks
        answer.time_ms += elapsed
        answer.revision += 1
        answer.overlay_shown = answer.overlay_shown or overlay_shown
        answer.updated_at = now
    audit.record(s, reader.name, "answer" if old is None else "revise-answer",
                 {"session": rs.id, "exam_index": case.exam_index, "position": position, "modality": phase,
                  "revision": answer.revision, "elapsed_ms": elapsed, "old": old, "new": new}, ip=ip, now=now)
    if rs.started_at is None:
        rs.started_at = now
    return answer


def complete_session(s: Session, rs: ReadingSession, reader: Reader, now: datetime, ip: str | None = None) -> None:
    if current_position(s, rs) <= len(rs.case_order):
        raise Conflict(f"case {current_position(s, rs)} is not answered yet")
    rs.completed_at = now
    audit.record(s, reader.name, "complete-session", {"session": rs.id, "number": rs.number,
                                                      "modality": rs.modality}, ip=ip, now=now)


def image_for_session(s: Session, rs: ReadingSession, reader: Reader, public_id: str, overlay: bool = False) -> Image:
    """An image the reader may see now in this session (NotFound for anything else, including no overlay)."""
    image = s.scalar(select(Image).where(Image.public_id == public_id)) if isinstance(public_id, str) else None
    if image is None or image.case_id not in rs.case_order:
        raise NotFound("no such image")
    position = rs.case_order.index(image.case_id) + 1
    if position > current_position(s, rs):
        raise NotFound("no such image")
    if overlay:
        case = s.get(Case, image.case_id)
        if image.overlay is None or _phase(s, rs, reader, case) != designs.AIDED:
            raise NotFound("no such overlay")
    return image
