"""--precision and the GPU path: half-precision autocast is opt-in, recorded and never mixed with fp32 results;
batches on a GPU give the one-by-one numbers.

Why this proves the claims: the bundled ``gmic_demo`` (a real GMIC) predicts one synthetic four-view exam
with the engine. The fp32 run must stay the default and be reproduced exactly after a bf16 run into the
same directory (the journal sets the bf16 results aside rather than reusing them, both ways); the bf16
run must differ from fp32 (it really ran in bfloat16) by no more than the bound docs/scale-out.md
states. The CUDA tests run only on a GPU machine (marked ``cuda``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rayutils import run_mammoscreen
from stageutils import small_dataset

BF16_BOUND = 0.15  # |bf16 - fp32| of gmic_demo probabilities: at most 0.10 on 40 images (docs/scale-out.md)


@pytest.fixture(scope="module")
def one_exam(synthetic_dataset, tmp_path_factory):
    """(cropped images, exam list with centres) of the first synthetic exam (4 images), for gmic_demo."""
    from mammoscreen.data.exams import load_exam_list, save_exam_list

    root = tmp_path_factory.mktemp("precision")
    images, exams = small_dataset(synthetic_dataset, root / "data")  # exam 0 only: its crops need no other exam
    run_mammoscreen(["run", "--models", "gmic_demo", "--images", images, "--exam-list", exams, "--output-dir",
                     root / "out", "--device", "cpu", "--no-evaluate", "--quiet", "--workers", "1"])
    exam_list = save_exam_list(load_exam_list(next((root / "out").glob("data_*.pkl")))[:1], root / "one_exam.pkl")
    return root / "out" / "cropped_images", exam_list


def _predict(one_exam, output, precision, device="cpu", batch_size=1):
    from mammoscreen.data.exams import load_exam_list
    from mammoscreen.engine import PredictOptions, run_prediction
    from mammoscreen.models.factory import PredictorRequest, build_predictor

    images, exam_list = one_exam
    predictor = build_predictor(PredictorRequest("gmic_demo", "official", None, device))
    return run_prediction(predictor, load_exam_list(exam_list), images, output,
                          PredictOptions(device=device, progress=False, precision=precision, batch_size=batch_size))


def _values(run):
    return np.array([[row["benign_pred"], row["malignant_pred"]] for row in run.rows])


@pytest.mark.slow
def test_bf16_is_opt_in_bounded_and_never_reused_as_fp32(one_exam, tmp_path):
    out = tmp_path / "run"
    fp32 = _predict(one_exam, out, "fp32")
    first = (out / "predictions.csv").read_bytes()
    bf16 = _predict(one_exam, out, "bf16")
    assert bf16.reused == 0 and len(bf16.rows) == 4  # the fp32 results were not taken as bf16 ones
    deviation = np.abs(_values(bf16) - _values(fp32)).max()
    assert 0 < deviation <= BF16_BOUND
    again = _predict(one_exam, out, "fp32")
    assert again.reused == 0 and (out / "predictions.csv").read_bytes() == first  # nor the bf16 ones as fp32


def test_unknown_precision_is_refused():
    # Refused where the options are made, before any image is read (no run needed to show it).
    from mammoscreen.engine import PredictOptions

    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        PredictOptions(device="cpu", progress=False, precision="fp8")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (marked cuda; docs/testing.md)")
def test_gpu_batches_equal_one_by_one_and_the_cpu(one_exam, tmp_path):
    cpu = _values(_predict(one_exam, tmp_path / "cpu", "fp32"))
    one = _values(_predict(one_exam, tmp_path / "b1", "fp32", device="cuda"))
    four = _values(_predict(one_exam, tmp_path / "b4", "fp32", device="cuda", batch_size=4))
    assert np.abs(one - four).max() <= 1e-5 and np.abs(one - cpu).max() <= 1e-4
    half = _values(_predict(one_exam, tmp_path / "bf16", "bf16", device="cuda", batch_size=4))
    assert np.abs(half - one).max() <= BF16_BOUND
