"""One call for a whole file: what ``mammoscreen mrmc`` runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..validation import EvaluationInputError, check_scores
from .ai_readers import ai_versus_readers
from .data import _model_column, mrmc_from_reader_study, read_mrmc
from .or_hillis import obuchowski_rockette
from .results import AIVersusReadersResult, MRMCResult

__all__ = ["analyse_mrmc_file"]


def _is_reader_study_table(path: Path) -> bool:
    if path.suffix.lower() in (".pkl", ".pickle", ".p"):
        return True
    if path.suffix.lower() != ".csv":
        return False
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return False
    columns = {str(c).strip().lower() for c in header}
    return not {"reader", "case", "modality", "score"} <= columns and "label" in columns


def analyse_mrmc_file(path: str | os.PathLike, *, covariance: str = "jackknife", confidence: float = 0.95,
                      modalities: Sequence[str] | None = None, readers: Sequence[str] | None = None,
                      ai: str | None = None, margin: float | None = None,
                      hybrid_with: str | None = None) -> tuple[MRMCResult, dict[str, AIVersusReadersResult]]:
    """Read an MRMC file and run the OR analysis, plus the AI-versus-readers comparison with ``ai``.

    Parameters
    ----------
    path : ``.imrmc`` (iMRMC), tidy ``.csv`` (reader,case,modality,score,truth), or a reader-study table
        (``results.pkl`` layout, .csv or .pkl) whose reader columns form modality 'readers'.
    covariance : 'jackknife' or 'delong'.
    confidence : CI coverage.
    modalities, readers : analyse only these (default: all).
    ai : the standalone model: a reader ID of an iMRMC/tidy file (taken out of the readers and compared
        with them in each modality), or a model column of a reader-study table (e.g. AI_GMIC_top5_POM).
    margin : non-inferiority margin for the AI comparison.
    hybrid_with : reader-study tables only - add modality 'hybrid', each reader's mean with this model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MRMC file not found: {path}")
    ai_results: dict[str, AIVersusReadersResult] = {}
    if _is_reader_study_table(path):
        from ..io import read_reader_study
        from ..readers import display_name, split_reader_study_columns

        frame = read_reader_study(path)
        data = mrmc_from_reader_study(frame, readers, hybrid_with, str(path))
        if modalities is not None:
            data = data.select(modalities=modalities)
        if ai is not None:
            _, model_columns = split_reader_study_columns(frame, readers, None, str(path))
            column = _model_column(frame, ai, model_columns, str(path))
            ai_score = check_scores(pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float),
                                    data.truth.size, f"column {column!r}", str(path))
            for i, modality in enumerate(data.modalities):
                ai_results[modality] = ai_versus_readers(
                    data.truth, data.scores[i], ai_score, reader_names=data.readers, ai_name=display_name(column),
                    covariance=covariance, confidence=confidence, margin=margin, source=str(path))
        return obuchowski_rockette(data, covariance, confidence), ai_results
    if hybrid_with is not None:
        raise EvaluationInputError(f"{path}: --hybrid needs a reader-study table (columns label, <reader>_POM, "
                                   "AI_<model>_POM)")
    data = read_mrmc(path)
    data = data.select(modalities=modalities, readers=readers)
    if ai is not None:
        if ai not in data.readers:
            raise EvaluationInputError(f"{path}: no reader {ai!r} to use as the AI; readers: {data.readers}")
        others = [r for r in data.readers if r != ai]
        k = data.readers.index(ai)
        for i, modality in enumerate(data.modalities):
            ai_results[modality] = ai_versus_readers(
                data.truth, data.scores[i, [data.readers.index(r) for r in others]], data.scores[i, k],
                reader_names=others, ai_name=ai, covariance=covariance, confidence=confidence, margin=margin,
                source=str(path))
        data = data.select(readers=others)
    return obuchowski_rockette(data, covariance, confidence), ai_results
