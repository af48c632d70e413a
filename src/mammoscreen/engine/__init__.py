"""The prediction engine: a :class:`~mammoscreen.models.interfaces.Predictor` over an exam list, to files.

:mod:`.run` holds the one loop (journal, failures, outputs, predictions.csv); :mod:`.units` cuts a run
into work units (images or exams); :mod:`.work` is what runs one unit wherever it runs; :mod:`.executor`
the interface an executor implements and the local one; :mod:`.outputs` the files.
"""

from .executor import Executor, LocalExecutor
from .outputs import (
                      EXAM_INDEX_COLUMN,
                      FAILURES_CSV,
                      MAPS_DIR,
                      PREDICTIONS_CSV,
                      VISUALIZATION_DIR,
                      NonFiniteOutputError,
                      check_finite,
                      label_column,
                      save_maps,
                      write_predictions_csv,
)
from .run import PredictionRun, PredictOptions, predict_exams, predict_images, run_prediction
from .units import exam_maps_name, settings_fingerprint
from .work import Job, UnitFailure, UnitResult, UnitRunner, WorkUnit

__all__ = ["EXAM_INDEX_COLUMN", "FAILURES_CSV", "MAPS_DIR", "PREDICTIONS_CSV", "VISUALIZATION_DIR", "Executor",
           "Job", "LocalExecutor", "NonFiniteOutputError", "PredictOptions", "PredictionRun", "UnitFailure",
           "UnitResult", "UnitRunner", "WorkUnit", "check_finite", "exam_maps_name", "label_column",
           "predict_exams", "predict_images", "run_prediction", "save_maps",
           "settings_fingerprint", "write_predictions_csv"]
