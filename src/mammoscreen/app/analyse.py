"""``mammoscreen reader-app analyse``: the study's MRMC result and its report section.

From the answers of the readers who read every study case in every modality (training cases excluded):

* the Obuchowski-Rockette analysis with Hillis's degrees of freedom of unaided versus aided reading
  (:func:`mammoscreen.evaluate.mrmc.obuchowski_rockette`; one case = one breast, the score the reader's
  probability of malignancy) - the same figures ``mammoscreen mrmc`` gives on the exported ``.imrmc``;
* each modality against the AI alone (Hillis's single-treatment analysis of AUC(AI) - AUC(reader),
  :func:`mammoscreen.evaluate.mrmc.ai_versus_readers`);
* per modality, every reader's and the AI's AUROC/AUPRC with bootstrap CIs, the readers' mean and the
  reader+AI hybrids (:func:`mammoscreen.evaluate.readers.evaluate_reader_study` on the ``results.pkl``-style
  table).

Written to ``OUTPUT`` (default ``STUDY_DIR/analysis``): ``study.imrmc``, ``mrmc.json``, ``mrmc.txt``,
``reader_study_<modality>/``, and ``reader_study_section.html`` - a self-contained HTML section for a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from .. import __version__
from ..evaluate.mrmc import MRMCData, ai_versus_readers, obuchowski_rockette
from ..evaluate.readers import evaluate_reader_study
from ..evaluate.result_files import format_mrmc, write_mrmc, write_reader_study
from ..evaluate.validation import EvaluationInputError
from ..core.files import write_text_atomic
from . import audit
from .db import Study
from .errors import StudyError
from .export import imrmc_text, results_table, study_scores
from .study import StudyHandle

SECTION_FILE = "reader_study_section.html"


@dataclass
class StudyAnalysis:
    output_dir: Path
    text: str
    files: list[Path]
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def analyse_study(study: StudyHandle, output_dir: str | Path | None = None, *, covariance: str = "jackknife",
                  confidence: float = 0.95, n_bootstrap: int = 2000, seed: int = 0,
                  actor: str = "cli") -> StudyAnalysis:
    """Run the study's MRMC analysis and write its files (see the module docstring)."""
    output_dir = Path(output_dir) if output_dir is not None else study.directory / "analysis"
    with study.db.read() as s:
        settings: Study = s.get(Study, 1)
        data = study_scores(s)
    notes = [f"reader {name} left out: {why}" for name, why in data.excluded.items()]
    if not data.readers:
        raise StudyError("no reader has read every study case in every modality yet; nothing to analyse"
                         + (f" ({'; '.join(notes)})" if notes else ""))
    output_dir.mkdir(parents=True, exist_ok=True)
    files = []
    imrmc = output_dir / "study.imrmc"
    write_text_atomic(imrmc, imrmc_text(data, settings.name))
    files.append(imrmc)
    try:
        mrmc = MRMCData(list(data.modalities), list(data.readers), list(data.cases), data.truth.copy(),
                        data.scores.astype(float), str(imrmc))
        result = obuchowski_rockette(mrmc, covariance, confidence)
        ai_results = {}
        if data.ai is not None and len(data.readers) >= 2:
            for m, modality in enumerate(data.modalities):
                ai_results[modality] = ai_versus_readers(data.truth, data.scores[m].astype(float), 100 * data.ai,
                                                         reader_names=data.readers, ai_name=data.ai_model,
                                                         covariance=covariance, confidence=confidence,
                                                         source=str(imrmc))
        elif data.ai is not None:
            notes.append("the AI-alone comparison needs at least two readers")
        files += write_mrmc(result, output_dir, ai_results)
        reader_studies = {}
        for modality in data.modalities:
            table = results_table(data, modality)
            evaluation = evaluate_reader_study(table, n_bootstrap=n_bootstrap, seed=seed, confidence=confidence)
            reader_studies[modality] = evaluation
            files += write_reader_study(evaluation, output_dir / f"reader_study_{modality}")
    except EvaluationInputError as e:
        raise StudyError(f"analysis not possible: {e}") from None
    text = format_mrmc(result, ai_results)
    section = _section(settings, data, result, ai_results, reader_studies, notes)
    write_text_atomic(output_dir / SECTION_FILE, section)
    files.append(output_dir / SECTION_FILE)
    with study.db.write() as s:
        audit.record(s, actor, "analyse", {"output_dir": str(output_dir), "readers": data.readers,
                                           "excluded": data.excluded, "covariance": covariance})
    return StudyAnalysis(output_dir, text, files, result.to_dict(), notes)


def _section(settings, data, result, ai_results, reader_studies, notes) -> str:
    env = Environment(loader=PackageLoader("mammoscreen.app", "templates"), autoescape=select_autoescape(default=True))
    figures = result.to_dict()
    return env.get_template("analysis_section.html").render(
        study=settings, data=data, f=figures, ai={m: r.to_dict() for m, r in ai_results.items()},
        readers={m: r.to_dict() for m, r in reader_studies.items()}, notes=notes, version=__version__,
        n_cases=len(data.cases), n_abnormal=int(data.truth.sum()))
