"""Localisation in a multi-model run: every model with saliency maps (GMIC and GLAM) is localised, a model
without maps is reported and the others carry on, and the report lists each model.

Tiny random GMIC and GLAM models on two synthetic exams, through run_pipeline with the run's own crop and
centres (the full-size models run through the CLI in tests/parity/test_glam_parity.py).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from testutils import lesion_images

from mammoscreen.data.images import read_png
from mammoscreen.engine import PredictOptions
from mammoscreen.models.gmic.modeling import GMIC, GMICConfig
from mammoscreen.models.nyu_glam.modeling import GLAM, GLAMConfig
from mammoscreen.models.registry import get_model_spec
from mammoscreen.models.factory import PredictorRequest
from mammoscreen.workflows.pipeline import run_pipeline
from mammoscreen.workflows.run_evaluation import LOCALIZATION_DIR, localize_run

pytestmark = pytest.mark.slow  # whole runs of tiny GMIC and GLAM models on synthetic exams

GMIC_TINY = GMICConfig(input_size=(896, 704), num_patches=2, patch_size=(64, 64), global_channels=4,
                       local_channels=8, attention_dim=16)
GLAM_TINY = GLAMConfig(input_size=(256, 128), crop_size=(64, 64), global_channels=4, local_channels=8,
                       local_blocks=(1, 1, 1, 1))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from mammoscreen.data.synth.generate import generate_exams
    from mammoscreen.data.synth.render import SynthOptions

    root = tmp_path_factory.mktemp("run_localization")
    exams = generate_exams(2, root / "synth", seed=3, progress=False,
                           options=SynthOptions(scale=0.25, p_benign=0.5, p_malignant=0.7))
    assert exams
    torch.manual_seed(0)
    torch.save(GMIC(GMIC_TINY).state_dict(), root / "gmic_tiny.p")
    glam_dir = root / "glam"
    glam_dir.mkdir()
    torch.save(GLAM(GLAM_TINY).state_dict(), glam_dir / "model_joint.ckpt")
    segmentation = root / "synth" / "segmentation"
    output = root / "out"
    result = run_pipeline(root / "synth" / "images", root / "synth" / "exam_list.pkl", output,
                          [PredictorRequest("gmic", root / "gmic_tiny.p", "1", options={"config": GMIC_TINY}),
                           PredictorRequest("nyu_glam", glam_dir, "model_joint", options={"config": GLAM_TINY})],
                          options=PredictOptions(device="cpu", save_maps=True, segmentations=segmentation,
                                                 progress=False),
                          log=lambda message: None)
    assert {n: o.status for n, o in result.outcomes.items()} == {"gmic": "done", "nyu_glam": "done"}
    return result, output, segmentation


def test_registry_says_which_models_write_saliency_maps():
    assert {name for name in ("gmic", "gmic_demo", "nyu_glam", "nyu_model", "end2end", "frcnn_cad")
            if get_model_spec(name).saliency_maps} == {"gmic", "gmic_demo", "nyu_glam"}


def test_every_model_with_maps_is_localised_and_the_report_lists_each(run, tmp_path):
    from mammoscreen.report import build_report

    result, output, segmentation = run
    logged = []
    localized = localize_run(result, output, segmentation, n_bootstrap=50, log=logged.append)
    assert set(localized.results) == {"gmic", "nyu_glam"} and not localized.problems
    lesions = lesion_images(segmentation)
    assert lesions["malignant"]
    for name, layout in (("gmic", "gmic"), ("nyu_glam", "glam")):
        summary = json.loads((output / name / LOCALIZATION_DIR / "localization.json").read_text())
        assert summary["maps_dir"] == str(output / name / "maps")
        assert set(summary["map_layouts"]) == {layout} and summary["n_skipped"] == 0
        for kind in ("benign", "malignant"):
            assert summary["classes"][kind]["n_images"] == len(lesions[kind])
        rows = localized.results[name].rows
        for row in rows:  # the maximum's position is in the original image and consistent with the mask
            mask = read_png(segmentation / f"{row['image']}_{row['class']}.png") > 0
            assert row["hit"] == int(mask[row["max_row"], row["max_col"]])
        assert any(line.startswith(f"{name}: localisation of") for line in logged)

    html = build_report(output, tmp_path / "report.html").read_text()
    table = html[html.index('id="localization"'):]
    table = table[:table.index("</section>")]
    assert table.count("<code>gmic</code>") == 2 and table.count("<code>nyu_glam</code>") == 2  # two classes each


def test_a_model_without_maps_is_reported_and_the_others_are_localised(run, tmp_path):
    result, output, segmentation = run
    copy = tmp_path / "out"
    shutil.copytree(output, copy)
    shutil.rmtree(copy / "nyu_glam" / "maps")
    shutil.rmtree(copy / "gmic" / LOCALIZATION_DIR, ignore_errors=True)
    shutil.rmtree(copy / "nyu_glam" / LOCALIZATION_DIR, ignore_errors=True)
    logged = []
    localized = localize_run(result, copy, segmentation, n_bootstrap=0, log=logged.append)
    assert set(localized.results) == {"gmic"}
    assert "no saliency maps in" in localized.problems["nyu_glam"] and "--save-maps" in localized.problems["nyu_glam"]
    assert any(line.startswith("nyu_glam: not localised") for line in logged)
    assert (copy / "gmic" / LOCALIZATION_DIR / "localization.json").is_file()
    assert not (copy / "nyu_glam" / LOCALIZATION_DIR).exists()


def test_a_bad_glam_maps_file_is_skipped_inside_the_model(run, tmp_path):
    result, output, segmentation = run
    copy = tmp_path / "out"
    shutil.copytree(output, copy)
    maps = sorted((copy / "nyu_glam" / "maps").glob("*.npz"))
    lesions = lesion_images(segmentation)
    damaged = next(p for p in maps if p.stem in lesions["malignant"] | lesions["benign"])
    with np.load(damaged) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["saliency_map"] = arrays["saliency_map"][:, :-1]  # one row of samples too few for the window
    np.savez(damaged, **arrays)
    localized = localize_run(result, copy, segmentation, n_bootstrap=0, log=lambda message: None)
    glam = localized.results["nyu_glam"]
    assert [f.name for f in glam.skipped] == [damaged.stem] and "do not belong together" in glam.skipped[0].reason
    assert localized.results["gmic"].skipped == []
