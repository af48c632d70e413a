"""Reading what evaluation consumes: prediction CSVs and their exam list, reader-study tables.

Prediction CSVs come in the meta-repository's two shapes, told apart as its ``score.py`` does (a
``left_malignant`` column means breast level):

* image level - ``image_index,malignant_pred,malignant_label``, optionally ``benign_pred`` and
  ``benign_label`` (GMIC and ``mammoscreen predict`` write ``image_index,benign_pred,malignant_pred,
  benign_label,malignant_label``); labels come from the file.
* breast level - ``left_malignant,right_malignant``, optionally ``left_benign,right_benign``; row i is
  exam i of the exam list, whose ``cancer_label`` gives the labels - or, with an ``exam_index`` column
  (as ``mammoscreen predict`` writes for exam-level models, which skip exams lacking a view), the row is
  exam ``exam_index``.

An unnamed leading column (a pandas index) or an ``index`` column is allowed and must number the rows
0, 1, 2, ... in order. Every problem is reported with the file name, what is wrong and what to do.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.limits import InputLimitError
from ..core.pickled_tables import load_table_pickle
from ..core.safepickle import MalformedPickleError, UnsafePickleError
from ..data.exams import Exam, load_exam_list
from .validation import EvaluationInputError

__all__ = [
    "PredictionTable", "read_predictions", "resolve_exam_list", "read_reader_study", "check_csv_shape",
]

IMAGE_COLUMNS = ("image_index", "malignant_pred", "malignant_label")
BREAST_COLUMNS = ("left_malignant", "right_malignant")
INDEX_COLUMNS = ("index", "Unnamed: 0", "")
_NAN_WORDS = {"nan", "-nan", "na", "n/a", "null", "none", "<na>"}


@dataclass
class PredictionTable:
    """A validated prediction CSV: its level ('image' or 'breast') and numeric columns."""

    source: str
    level: str
    columns: dict[str, np.ndarray]
    image_names: list[str] | None = None
    n_rows: int = 0
    exam_indices: np.ndarray | None = None  # breast level with an 'exam_index' column: the exam of each row
    warnings: list[str] = field(default_factory=list)

    @property
    def has_benign(self) -> bool:
        keys = ("benign_pred", "benign_label") if self.level == "image" else ("left_benign", "right_benign")
        return all(k in self.columns for k in keys)


def _line_numbers(rows: np.ndarray, limit: int = 5) -> str:
    # CSV line of data row i is i + 2 (line 1 is the header).
    shown = ", ".join(str(int(r) + 2) for r in rows[:limit])
    return shown + (f", ... ({rows.size} rows in all)" if rows.size > limit else "")


def check_csv_shape(path: str | os.PathLike, source: str | None = None) -> None:
    """Every line of a CSV file has as many fields as its header; EvaluationInputError naming the first line that
    has not (pandas would shift such a row's values into the wrong columns, or blame another line).

    Also refuses a file that is not UTF-8 text or holds a field longer than the csv module's limit (128 kB).
    """
    source = source or str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return
            for row in reader:
                if row and len(row) != len(header):
                    raise EvaluationInputError(
                        f"{source}: CSV line {reader.line_num} has {len(row)} field(s) but the header has "
                        f"{len(header)}; fix that line (a stray comma or a missing value) so the columns line up")
    except UnicodeDecodeError:
        raise EvaluationInputError(f"{source}: not a UTF-8 text CSV file") from None
    except csv.Error as e:
        raise EvaluationInputError(f"{source}: not a readable CSV file (line {reader.line_num}: {e})") from None


def _numeric_column(frame: pd.DataFrame, column: str, source: str, labels: bool = False) -> np.ndarray:
    raw = frame[column].astype(str).str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad)
        first = raw.iloc[rows[0]]
        if first == "":
            what = "an empty value"
        elif first.lower() in _NAN_WORDS:
            what = "NaN"
        elif np.isinf(values[rows[0]]):
            what = f"an infinite value ({first!r})"
        else:
            what = f"a value that is not a number ({first!r})"
        need = "a label 0 or 1" if labels else "a finite probability or score"
        raise EvaluationInputError(
            f"{source}: column {column!r} has {what} on CSV line {_line_numbers(rows)}; every row needs {need} "
            "(re-run the model for those images, or remove the rows and the matching exam-list entries)")
    if labels:
        bad = (values != 0) & (values != 1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise EvaluationInputError(
                f"{source}: column {column!r} must hold the labels 0 and 1, but has {values[rows[0]]:g} on CSV line "
                f"{_line_numbers(rows)}; use 1 for malignant (or benign) and 0 otherwise")
    return values


def _check_index_column(frame: pd.DataFrame, source: str) -> None:
    for column in INDEX_COLUMNS:
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column].astype(str).str.strip(), errors="coerce").to_numpy()
        if not np.array_equal(values, np.arange(len(frame))):
            raise EvaluationInputError(
                f"{source}: the {column or 'unnamed'!r} index column does not number the rows 0, 1, 2, ... in order; "
                "row i must be exam i of the exam list - sort the file by that column (or drop the column if the "
                "rows are already in exam order)")


def _exam_index_column(frame: pd.DataFrame, source: str) -> np.ndarray:
    values = _numeric_column(frame, "exam_index", source)
    bad = np.flatnonzero((values < 0) | (values != np.round(values)))
    if bad.size:
        raise EvaluationInputError(f"{source}: column 'exam_index' must hold exam numbers 0, 1, 2, ... (line "
                                   f"{_line_numbers(bad)})")
    indices = values.astype(np.int64)
    duplicated = np.flatnonzero(pd.Series(indices).duplicated(keep=False).to_numpy())
    if duplicated.size:
        raise EvaluationInputError(f"{source}: exam_index {indices[duplicated[0]]} appears more than once (CSV lines "
                                   f"{_line_numbers(duplicated)}); each exam needs one row")
    return indices


def read_predictions(predictions: str | os.PathLike | pd.DataFrame, source: str | None = None) -> PredictionTable:
    """Read and validate a prediction CSV (or a DataFrame with the same columns).

    Parameters
    ----------
    predictions : path to the CSV, or a DataFrame.
    source : name used in error messages (default: the path, or 'predictions').
    """
    if isinstance(predictions, pd.DataFrame):
        frame = predictions.astype(str)
        source = source or "predictions"
    else:
        path = Path(predictions)
        source = source or str(path)
        if not path.is_file():
            raise FileNotFoundError(f"prediction file not found: {path}")
        check_csv_shape(path, source)
        try:
            # All columns as text: image names such as '0001' must stay strings, and numeric
            # problems are reported below with the offending line.
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise EvaluationInputError(f"{source}: the file is empty; expected a CSV with a header line such as "
                                       f"'{','.join(IMAGE_COLUMNS)}'") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise EvaluationInputError(f"{source}: not a readable CSV file ({e})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise EvaluationInputError(f"{source}: the file has a header but no rows; there is nothing to evaluate")

    if "left_malignant" in frame.columns:
        level = "breast"
        required = BREAST_COLUMNS
    else:
        level = "image"
        required = IMAGE_COLUMNS
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise EvaluationInputError(
            f"{source}: missing column(s) {', '.join(repr(c) for c in missing)} (found: "
            f"{', '.join(repr(c) for c in frame.columns)}). Image-level files need "
            f"'{','.join(IMAGE_COLUMNS)}' (optionally benign_pred,benign_label); breast-level files need "
            f"'{','.join(BREAST_COLUMNS)}' (optionally left_benign,right_benign), one row per exam")

    table = PredictionTable(source, level, {}, n_rows=len(frame))
    if level == "image":
        names = frame["image_index"].astype(str).str.strip()
        empty = np.flatnonzero((names == "").to_numpy())
        if empty.size:
            raise EvaluationInputError(f"{source}: column 'image_index' is empty on CSV line {_line_numbers(empty)}; "
                                       "every row needs the image name used in the exam list")
        duplicated = names.duplicated(keep=False).to_numpy()
        if duplicated.any():
            dup_names = list(dict.fromkeys(names[duplicated]))[:5]
            raise EvaluationInputError(
                f"{source}: image(s) {dup_names} appear more than once (CSV lines "
                f"{_line_numbers(np.flatnonzero(duplicated))}); each image needs exactly one prediction row")
        table.image_names = names.tolist()
        table.columns["malignant_pred"] = _numeric_column(frame, "malignant_pred", source)
        labels = _numeric_column(frame, "malignant_label", source, labels=True)
        table.columns["malignant_label"] = labels.astype(np.int8)
        present = [c for c in ("benign_pred", "benign_label") if c in frame.columns]
        if len(present) == 2:
            table.columns["benign_pred"] = _numeric_column(frame, "benign_pred", source)
            table.columns["benign_label"] = _numeric_column(frame, "benign_label", source, labels=True).astype(np.int8)
        elif present:
            table.warnings.append(f"{source}: has {present[0]!r} but not "
                                  f"{'benign_label' if present[0] == 'benign_pred' else 'benign_pred'!r}; "
                                  "benign metrics skipped")
    else:
        _check_index_column(frame, source)
        if "exam_index" in frame.columns:
            table.exam_indices = _exam_index_column(frame, source)
        for column in BREAST_COLUMNS:
            table.columns[column] = _numeric_column(frame, column, source)
        present = [c for c in ("left_benign", "right_benign") if c in frame.columns]
        if len(present) == 2:
            for column in present:
                table.columns[column] = _numeric_column(frame, column, source)
        elif present:
            raise EvaluationInputError(f"{source}: has {present[0]!r} but not its other side; breast-level benign "
                                       "predictions need both left_benign and right_benign")
    return table


def resolve_exam_list(exam_list: str | os.PathLike | Sequence[Exam] | None) -> tuple[list[Exam] | None, str | None]:
    """(exams, path or None) from a path, a list of :class:`Exam`, or None."""
    if exam_list is None:
        return None, None
    if isinstance(exam_list, (str, os.PathLike)):
        return load_exam_list(exam_list), str(exam_list)
    exams = list(exam_list)
    if not all(isinstance(e, Exam) for e in exams):
        raise EvaluationInputError("exam_list must be a path or a list of mammoscreen.data.Exam objects")
    return exams, None



def read_reader_study(path: str | os.PathLike) -> pd.DataFrame:
    """Read a reader-study table: the meta-repository's ``results.pkl`` layout, as pickle or CSV.

    Columns: ``case_ID``, ``side``, ``label`` (1 = malignant), one ``<reader>_POM`` column per reader
    and ``AI_<model>_POM`` per model (probability of malignancy).

    A pickle (``.pkl``/``.pickle``) is read without pandas' unpickler (which runs whatever code the file
    names): :mod:`mammoscreen.core.pickled_tables` accepts a pickled DataFrame of numbers and strings only,
    so a crafted file cannot run code or exhaust the memory.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reader-study file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".pkl", ".pickle", ".p"):
            table = load_table_pickle(path)
            frame = pd.DataFrame(dict(zip(range(len(table.columns)), table.data)), index=table.index)
            frame.columns = table.columns
            frame.index.name = table.index_name
        elif suffix in (".csv", ".txt"):
            check_csv_shape(path)
            frame = pd.read_csv(path)
        else:
            raise EvaluationInputError(f"{path}: unknown reader-study format {suffix!r}; use .csv or .pkl")
    except EvaluationInputError:
        raise
    except (UnsafePickleError, InputLimitError) as e:
        raise EvaluationInputError(f"{e}. Nothing in the file was run; save the table as CSV (DataFrame.to_csv) "
                                   "and pass the CSV") from None
    except MalformedPickleError as e:
        raise EvaluationInputError(str(e)) from None
    except Exception as e:  # any unreadable file: pickle, CSV parser and decoding errors differ widely
        raise EvaluationInputError(f"{path}: not a readable reader-study file ({type(e).__name__}: {e})") from None
    if not isinstance(frame, pd.DataFrame):
        raise EvaluationInputError(f"{path}: expected a pandas DataFrame (a table), got {type(frame).__name__}")
    return frame
