"""MRMC data: a fully crossed reader study, and its readers - iMRMC files, tidy CSVs, reader-study tables."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..validation import EvaluationInputError, check_scores

__all__ = ["MRMCData", "read_imrmc", "read_mrmc_csv", "read_mrmc", "mrmc_data_from_frame", "mrmc_from_reader_study"]


@dataclass
class MRMCData:
    """A fully crossed reader study: ``scores[modality, reader, case]`` and the truth of each case."""

    modalities: list[str]
    readers: list[str]
    cases: list[str]
    truth: np.ndarray
    scores: np.ndarray
    source: str = "MRMC data"

    def __post_init__(self) -> None:
        t, r, c = len(self.modalities), len(self.readers), len(self.cases)
        if self.scores.shape != (t, r, c):
            raise EvaluationInputError(f"{self.source}: scores have shape {self.scores.shape}, expected "
                                       f"(modalities, readers, cases) = {(t, r, c)}")
        if self.truth.shape != (c,):
            raise EvaluationInputError(f"{self.source}: truth must have one label per case ({c})")
        if not np.all(np.isfinite(self.scores)):
            raise EvaluationInputError(f"{self.source}: some scores are NaN or infinite; every reading needs a "
                                       "finite score")
        n_abnormal = int(self.truth.sum())
        if n_abnormal == 0 or n_abnormal == c:
            raise EvaluationInputError(f"{self.source}: all {c} cases are {'abnormal' if n_abnormal else 'normal'}; "
                                       "ROC analysis needs both normal (truth 0) and abnormal (truth 1) cases")

    @property
    def n_normal(self) -> int:
        return int((self.truth == 0).sum())

    @property
    def n_abnormal(self) -> int:
        return int((self.truth == 1).sum())

    def select(self, modalities: Sequence[str] | None = None, readers: Sequence[str] | None = None) -> "MRMCData":
        """A copy restricted to some modalities and/or readers (in the given order)."""
        mods = list(modalities) if modalities is not None else list(self.modalities)
        reads = list(readers) if readers is not None else list(self.readers)
        for kind, wanted, have in (("modality", mods, self.modalities), ("reader", reads, self.readers)):
            unknown = [w for w in wanted if w not in have]
            if unknown:
                raise EvaluationInputError(f"{self.source}: unknown {kind} {unknown}; the data has {have}")
        ti = [self.modalities.index(m) for m in mods]
        ri = [self.readers.index(r) for r in reads]
        return MRMCData(mods, reads, list(self.cases), self.truth.copy(), self.scores[np.ix_(ti, ri)].copy(),
                        self.source)


def _truth_value(text: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value not in (0.0, 1.0):
        raise EvaluationInputError(f"{where}: truth must be 0 (normal) or 1 (abnormal), got {text!r}")
    return int(value)


def mrmc_data_from_frame(frame: pd.DataFrame, truth: dict[str, int] | None = None,
                         source: str = "MRMC data") -> MRMCData:
    """Build :class:`MRMCData` from long-format rows ``reader, case, modality, score`` (+ ``truth``).

    Truth comes from ``truth`` (case -> 0/1) or a ``truth`` column, which must agree within a case.
    The design must be fully crossed: every reader scores every case in every modality.
    """
    required = ["reader", "case", "modality", "score"] + ([] if truth is not None else ["truth"])
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise EvaluationInputError(f"{source}: missing column(s) {missing}; a tidy MRMC CSV needs "
                                   "'reader,case,modality,score,truth' (one row per reading)")
    if frame.empty:
        raise EvaluationInputError(f"{source}: no readings (a header but no rows); a tidy MRMC CSV needs one row "
                                   "'reader,case,modality,score,truth' per reading")
    frame = frame.copy()
    for column in ("reader", "case", "modality"):
        frame[column] = frame[column].astype(str).str.strip()
    scores = pd.to_numeric(frame["score"], errors="coerce")
    bad = ~np.isfinite(scores.to_numpy(dtype=float))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise EvaluationInputError(f"{source}: score {frame['score'].iloc[row]!r} of reader "
                                   f"{frame['reader'].iloc[row]}, "
                                   f"case {frame['case'].iloc[row]}, modality {frame['modality'].iloc[row]} is not a "
                                   f"finite number ({int(bad.sum())} such rows)")
    frame["score"] = scores.astype(float)
    if truth is None:
        truth = {}
        for case, values in frame.groupby("case", sort=False)["truth"]:
            labels = {_truth_value(str(v).strip(), f"{source}, case {case}") for v in values}
            if len(labels) > 1:
                raise EvaluationInputError(f"{source}: case {case} has conflicting truth values {sorted(labels)}")
            truth[case] = labels.pop()
    duplicated = frame.duplicated(["modality", "reader", "case"], keep=False)
    if duplicated.any():
        first = frame[duplicated].iloc[0]
        raise EvaluationInputError(f"{source}: reader {first['reader']} scored case {first['case']} in modality "
                                   f"{first['modality']} more than once ({int(duplicated.sum())} duplicated rows); "
                                   "keep one score per reading")
    modalities = list(dict.fromkeys(frame["modality"]))
    readers = list(dict.fromkeys(frame["reader"]))
    cases = list(dict.fromkeys(frame["case"]))
    no_truth = [c for c in cases if c not in truth]
    if no_truth:
        raise EvaluationInputError(f"{source}: {len(no_truth)} case(s) have scores but no truth, e.g. {no_truth[:5]}")
    unread = [c for c in truth if c not in set(cases)]
    if unread:
        raise EvaluationInputError(f"{source}: {len(unread)} case(s) have a truth but no scores, e.g. {unread[:5]}; "
                                   "remove them or add their readings")
    expected = len(modalities) * len(readers) * len(cases)
    if len(frame) != expected:
        present = set(zip(frame["modality"], frame["reader"], frame["case"]))
        absent = [(m, r, c) for m in modalities for r in readers for c in cases if (m, r, c) not in present]
        m, r, c = absent[0]
        raise EvaluationInputError(
            f"{source}: the design is not fully crossed - {len(absent)} of {expected} readings are missing, e.g. "
            f"reader {r}, case {c}, modality {m}. The OR analysis needs every reader to score every case in "
            "every modality")
    t_index = {m: i for i, m in enumerate(modalities)}
    r_index = {r: i for i, r in enumerate(readers)}
    c_index = {c: i for i, c in enumerate(cases)}
    array = np.full((len(modalities), len(readers), len(cases)), np.nan)
    array[frame["modality"].map(t_index).to_numpy(), frame["reader"].map(r_index).to_numpy(),
          frame["case"].map(c_index).to_numpy()] = frame["score"].to_numpy()
    return MRMCData(modalities, readers, cases, np.array([truth[c] for c in cases], dtype=np.int8), array, source)


_HEADER_KEYS = {"N0": "normal cases", "N1": "abnormal cases", "NR": "readers", "NM": "modalities"}


def read_imrmc(path: str | os.PathLike) -> MRMCData:
    """Read the iMRMC text format.

    A free-text header with ``N0:``, ``N1:``, ``NR:``, ``NM:`` lines, then ``BEGIN DATA:`` and one
    row per reading ``readerID,caseID,modalityID,score``; truth rows are ``-1,caseID,truth,0|1``.
    The header counts are checked against the data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MRMC file not found: {path}")
    source = str(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise EvaluationInputError(f"{source}: not a text file ({e})") from None
    header: dict[str, int] = {}
    start = None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text.upper().startswith("BEGIN DATA"):
            start = number
            break
        match = re.match(r"^(N0|N1|NR|NM)\s*:\s*(\S+)\s*$", text, flags=re.IGNORECASE)
        if match:
            try:
                header[match.group(1).upper()] = int(match.group(2))
            except ValueError:
                raise EvaluationInputError(f"{source}, line {number}: {match.group(1)} must be a whole number, got "
                                           f"{match.group(2)!r}") from None
    if start is None:
        raise EvaluationInputError(f"{source}: no 'BEGIN DATA:' line; is this an iMRMC file? (header lines N0:, N1:, "
                                   "NR:, NM:, then BEGIN DATA: and rows 'reader,case,modality,score')")
    truth: dict[str, int] = {}
    rows = []
    for number, line in enumerate(lines[start:], start + 1):
        text = line.strip()
        if not text:
            continue
        fields = [f.strip() for f in text.split(",")]
        if len(fields) != 4:
            raise EvaluationInputError(f"{source}, line {number}: expected 4 comma-separated fields "
                                       f"'reader,case,modality,score', got {text!r}")
        reader, case, modality, value = fields
        if modality.lower() == "truth" or reader == "-1":
            label = _truth_value(value, f"{source}, line {number}")
            if case in truth and truth[case] != label:
                raise EvaluationInputError(f"{source}, line {number}: case {case} has two different truth rows")
            truth[case] = label
            continue
        try:
            score = float(value)
        except ValueError:
            raise EvaluationInputError(f"{source}, line {number}: score {value!r} is not a number") from None
        rows.append((reader, case, modality, score))
    if not rows:
        raise EvaluationInputError(f"{source}: no readings after 'BEGIN DATA:'")
    frame = pd.DataFrame(rows, columns=["reader", "case", "modality", "score"])
    data = mrmc_data_from_frame(frame, truth, source)
    found = {"N0": data.n_normal, "N1": data.n_abnormal, "NR": len(data.readers), "NM": len(data.modalities)}
    for key, count in header.items():
        if found[key] != count:
            raise EvaluationInputError(f"{source}: the header says {key}:{count} but the data have {found[key]} "
                                       f"{_HEADER_KEYS[key]}; the file may be truncated or edited")
    return data


def read_mrmc_csv(path: str | os.PathLike) -> MRMCData:
    """Read a tidy CSV with columns ``reader,case,modality,score,truth`` (one row per reading)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MRMC file not found: {path}")
    from ..io import check_csv_shape

    check_csv_shape(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise EvaluationInputError(f"{path}: not a readable CSV file ({e})") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return mrmc_data_from_frame(frame, source=str(path))


def mrmc_from_reader_study(frame: pd.DataFrame, readers: Sequence[str] | None = None,
                           hybrid_with: str | None = None, source: str = "reader study") -> MRMCData:
    """MRMC data from a reader-study table (``results.pkl`` layout): one row per case (breast).

    The readers' probabilities form modality 'readers'; with ``hybrid_with`` (a model column), a
    second modality 'hybrid' holds each reader's mean with that model's probability.
    """
    from ..readers import reader_study_labels, split_reader_study_columns

    reader_columns, model_columns = split_reader_study_columns(frame, readers, None, source)
    truth = reader_study_labels(frame, source)

    def numbers(column: str) -> np.ndarray:  # text in a score column is reported, not a traceback
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        return check_scores(values, truth.size, f"column {column!r}", source)

    scores = [np.vstack([numbers(c) for c in reader_columns])]
    modalities = ["readers"]
    if hybrid_with is not None:
        model = numbers(_model_column(frame, hybrid_with, model_columns, source))
        scores.append((scores[0] + model[None, :]) / 2)
        modalities.append("hybrid")
    cases = _case_names(frame)
    return MRMCData(modalities, [_display(c) for c in reader_columns], cases, truth, np.stack(scores), source)


def _model_column(frame: pd.DataFrame, name: str, model_columns: Sequence[str], source: str) -> str:
    """The column of model ``name``, given as a column ('AI_GMIC_top5_POM') or a display name ('GMIC_top5')."""
    from ..readers import display_name

    if name in frame.columns:
        return name
    for column in model_columns:
        if display_name(column) == name:
            return column
    raise EvaluationInputError(f"{source}: no model column {name!r}; models: {list(model_columns)}")


def _case_names(frame: pd.DataFrame) -> list[str]:
    if "case_ID" in frame.columns and "side" in frame.columns:
        return [f"{c}{s}" for c, s in zip(frame["case_ID"].astype(str), frame["side"].astype(str))]
    return [str(i) for i in range(len(frame))]


def _display(column: str) -> str:
    return column[:-4] if column.endswith("_POM") else column


def read_mrmc(path: str | os.PathLike) -> MRMCData:
    """Read MRMC data from ``.imrmc`` (iMRMC) or a tidy ``.csv`` (``reader,case,modality,score,truth``)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_mrmc_csv(path)
    return read_imrmc(path)
