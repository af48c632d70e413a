"""The batch size changes how many windows go through one forward pass, never the predictions.

Why this proves the claim: ``gmic_demo`` (a real GMIC with batch-norm in eval mode, top-t% pooling and
patch cropping, all per image) predicts 16 synthetic images once one by one and once eight per forward;
every prediction must agree within 1e-6 and every map within 1e-5 (float32 convolutions over a batch
may sum in another order), and the files list the same images in the same order.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from rayutils import run_mammoscreen

pytestmark = pytest.mark.slow


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def prepared(synthetic_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("batch_size")
    run_mammoscreen(["run", "--models", "gmic_demo", "--images", synthetic_dataset / "images", "--exam-list",
                     synthetic_dataset / "exam_list.pkl", "--output-dir", root, "--device", "cpu", "--no-evaluate",
                     "--quiet", "--workers", "1", "--save-maps"])
    return root


def test_batch_of_eight_equals_one_by_one(prepared, tmp_path):
    exam_list = next(prepared.glob("data_*.pkl"))
    out = tmp_path / "b8"
    run_mammoscreen(["predict", "--model", "gmic_demo", "--images", prepared / "cropped_images", "--exam-list",
                     exam_list, "--output-dir", out, "--device", "cpu", "--batch-size", "8", "--save-maps", "--quiet"])
    one, eight = _rows(prepared / "gmic_demo" / "predictions.csv"), _rows(out / "predictions.csv")
    assert [r["image_index"] for r in one] == [r["image_index"] for r in eight] and len(one) == 16
    for a, b in zip(one, eight):
        for column in ("benign_pred", "malignant_pred"):
            assert abs(float(a[column]) - float(b[column])) <= 1e-6, (a, b)
        with np.load(prepared / "gmic_demo" / "maps" / f"{a['image_index']}.npz") as x, \
                np.load(out / "maps" / f"{a['image_index']}.npz") as y:
            for key in x.files:
                if x[key].dtype.kind in "fc":
                    np.testing.assert_allclose(x[key], y[key], rtol=0, atol=1e-5, err_msg=key)
                else:  # patch positions, placement, the image's origin: exactly the same
                    assert np.array_equal(x[key], y[key]), key
