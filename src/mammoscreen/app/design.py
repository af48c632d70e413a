"""Study designs: which sessions a reader has, in which order they read the cases, when a session opens.

* **independent** (crossover): one session per modality; half of the readers start unaided, half aided
  (alternating in the order readers are added); the next session opens ``washout_days`` after the
  previous one was completed, as the server enforces.
* **sequential**: one session; each case is read unaided first, then the AI is revealed and the reader
  may revise. Both answers are kept; the unaided one is locked once the AI has been shown.

Case order: a permutation per reader and session drawn from ``numpy.random.default_rng([study seed,
reader number, session number])`` and stored with the session, training cases first (shuffled among
themselves the same way), so the order can be recomputed from the recorded seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

import numpy as np

from .errors import StudyError

DESIGNS = ("independent", "sequential")
UNAIDED, AIDED = "unaided", "aided"
MODALITIES = (UNAIDED, AIDED)
SEQUENTIAL = "sequential"  # the modality of a sequential design's one session (both reads)
BIRADS = ("0", "1", "2", "3", "4", "5")


@dataclass(frozen=True)
class SessionPlan:
    number: int
    modality: str
    seed: int
    case_order: list[int]


def check_design(design: str, modalities: Sequence[str], washout_days: float) -> None:
    if design not in DESIGNS:
        raise StudyError(f"unknown design {design!r}; choose one of {', '.join(DESIGNS)}")
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities or len(set(modalities)) != len(modalities):
        raise StudyError(f"modalities must be one or both of {', '.join(MODALITIES)} (each once), got "
                         f"{', '.join(modalities) or 'none'}")
    if design == SEQUENTIAL and list(modalities) != [UNAIDED, AIDED]:
        raise StudyError("the sequential design needs both modalities (unaided, then aided)")
    if not (0 <= washout_days <= 3650):
        raise StudyError(f"the wash-out period must be between 0 and 3650 days, got {washout_days}")


def session_seed(study_seed: int, reader_number: int, session_number: int) -> int:
    """The seed of one session's case order (recorded with the session)."""
    sequence = np.random.SeedSequence([int(study_seed), int(reader_number), int(session_number)])
    return int(sequence.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


def case_order(seed: int, training: Sequence[int], cases: Sequence[int]) -> list[int]:
    """Training cases (shuffled) then the study cases (shuffled), by the session's seed."""
    rng = np.random.default_rng(seed)
    return [int(c) for c in rng.permutation(np.asarray(training, dtype=np.int64))] + \
           [int(c) for c in rng.permutation(np.asarray(cases, dtype=np.int64))]


def plan_sessions(design: str, modalities: Sequence[str], study_seed: int, reader_number: int,
                  training: Sequence[int], cases: Sequence[int]) -> list[SessionPlan]:
    """The reading sessions of a new reader (``reader_number`` counts readers from 0)."""
    if design == SEQUENTIAL:
        seed = session_seed(study_seed, reader_number, 1)
        return [SessionPlan(1, SEQUENTIAL, seed, case_order(seed, training, cases))]
    order = list(modalities)
    if len(order) > 1 and reader_number % 2 == 1:
        order.reverse()  # counterbalance: every other reader starts with the other modality
    plans = []
    for number, modality in enumerate(order, 1):
        seed = session_seed(study_seed, reader_number, number)
        plans.append(SessionPlan(number, modality, seed, case_order(seed, training, cases)))
    return plans


def opens_at(previous_completed_at: datetime | None, washout_days: float) -> datetime | None:
    """When a session that follows another opens: None while the previous one is unfinished."""
    if previous_completed_at is None:
        return None
    return previous_completed_at + timedelta(days=float(washout_days))


def choose_training(n_exams: int, n_training: int, study_seed: int) -> list[int]:
    """Exam indices used as training cases (excluded from analysis), drawn with the study seed."""
    if not 0 <= n_training < n_exams:
        raise StudyError(f"--training must be between 0 and {n_exams - 1} (the exam list has {n_exams} exams), "
                         f"got {n_training}")
    rng = np.random.default_rng(np.random.SeedSequence([int(study_seed), 0x7A1]))
    return sorted(int(i) for i in rng.choice(n_exams, size=n_training, replace=False))
