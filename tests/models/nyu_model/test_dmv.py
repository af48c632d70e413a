"""DMV-CNN architectures, checkpoint loading and the official random streams, on generated weights and data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mammoscreen.cli import main
from mammoscreen.data import exams_from_data
from mammoscreen.data.exams import VIEWS
from mammoscreen.models.nyu_model.modeling import LABELS, ImageWiseDMV, ViewWiseDMV, dmv_resnet22
from mammoscreen.models.nyu_model.predictor import (
    IMAGE_HEATMAPS,
    ImageWiseDMVPredictor,
    ViewWiseDMVPredictor,
    build_nyu_model,
    build_nyu_model_single,
    load_image_wise,
    load_view_wise,
)
from mammoscreen.models.registry import get_model_spec
from mammoscreen.models.weights import WeightsError


@pytest.fixture(scope="module")
def view_wise_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("dmv") / "view_wise.p"
    torch.save({"model": ViewWiseDMV(1).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def image_wise_file(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("dmv") / "image_wise.p"
    torch.save({"model": ImageWiseDMV(3).state_dict()}, path)
    return path


def test_state_dicts_have_the_official_aliased_layout():
    view_wise = ViewWiseDMV(1).state_dict()
    assert len(view_wise) == 794
    same = lambda a, b: view_wise[a].data_ptr() == view_wise[b].data_ptr()  # noqa: E731 - one shared tensor
    assert same("four_view_resnet.l_cc.first_conv.weight", "four_view_resnet.cc.first_conv.weight")
    assert same("four_view_resnet.r_mlo.final_bn.weight", "four_view_resnet.mlo.final_bn.weight")
    assert view_wise["output_layer_cc.fc_layer.weight"].shape == (8, 512)
    image_wise = ImageWiseDMV(3).state_dict()
    assert len(image_wise) == 802
    assert image_wise["four_view_resnet.cc.first_conv.weight"].shape == (16, 3, 7, 7)
    assert image_wise["fc1_rmlo.weight"].shape == (256, 256)
    assert dmv_resnet22().first_conv.padding == (0, 0)  # unlike GMIC's, the DMV-CNN stem is unpadded


def test_view_wise_heads_average_cc_and_mlo():
    torch.manual_seed(0)
    model = ViewWiseDMV(1).eval()
    pooled = {v: torch.randn(2, 256) for v in VIEWS}
    with torch.no_grad():
        out = model.heads(pooled)
        h_cc = F.relu(model.fc1_cc(torch.cat([pooled["L-CC"], pooled["R-CC"]], 1)))
        logp_cc = F.log_softmax(model.output_layer_cc.fc_layer(h_cc).view(2, 4, 2), -1)
    assert torch.allclose(out.logp_cc, logp_cc)
    expected = (out.logp_cc[..., 1].exp() + out.logp_mlo[..., 1].exp()) / 2
    assert torch.allclose(out.prediction, expected)
    assert out.prediction.shape == (2, len(LABELS))


def test_single_image_model_uses_the_first_four_outputs_of_its_view_head():
    torch.manual_seed(0)
    model = ImageWiseDMV(1).eval()
    x = torch.randn(1, 1, 200, 160)
    with torch.no_grad():
        out = model(x, "R-MLO")
        features = model.four_view_resnet.mlo(x).mean(dim=(2, 3))
        logits = model.output_layer_rmlo.fc_layer(F.relu(model.fc1_rmlo(features)))[:, :4]
        expected = F.log_softmax(logits.view(1, 2, 2), -1)
    assert torch.allclose(out.pooled, features, atol=1e-6)
    assert torch.allclose(out.logp, expected, atol=1e-6)
    assert torch.allclose(out.probabilities, expected[..., 1].exp(), atol=1e-6)


def test_loading_rejects_other_formats_and_inconsistent_aliases(view_wise_file, tmp_path):
    state = torch.load(view_wise_file, weights_only=True)["model"]
    plain = tmp_path / "plain.p"
    torch.save(state, plain)
    with pytest.raises(WeightsError, match="dict with key 'model'"):
        load_view_wise(plain)
    broken = dict(state)
    broken["four_view_resnet.r_cc.first_conv.weight"] = broken["four_view_resnet.cc.first_conv.weight"] + 1
    path = tmp_path / "broken.p"
    torch.save({"model": broken}, path)
    with pytest.raises(WeightsError, match="r_cc.first_conv.weight differs from the cc network"):
        load_view_wise(path)
    with pytest.raises(WeightsError, match="fc1_lcc"):
        load_image_wise(view_wise_file)  # a view-wise checkpoint is not the image-wise model


def test_variant_and_channel_mismatches_are_explained(view_wise_file, image_wise_file):
    with pytest.raises(ValueError, match="needs the patch classifier"):
        build_nyu_model(view_wise_file, IMAGE_HEATMAPS, device="cpu")
    with pytest.raises(ValueError, match="add --heatmaps"):
        build_nyu_model(view_wise_file, "image_only", device="cpu", patch_weights="x.p")
    with pytest.raises(WeightsError, match="add --heatmaps --patch-weights"):
        build_nyu_model_single(image_wise_file, device="cpu")  # a 3-channel checkpoint
    with pytest.raises(ValueError, match="unknown nyu_model variant"):
        build_nyu_model(view_wise_file, "ensemble", device="cpu")
    with pytest.raises(ValueError, match="only to the image\\+heatmaps variant"):
        build_nyu_model(view_wise_file, device="cpu", heatmap_precision="bfloat16")


def test_registry_entries():
    nyu = get_model_spec("nyu_model")
    single = get_model_spec("nyu_model_single")
    assert nyu.output_level == "breast" and nyu.prediction_columns == LABELS
    assert single.output_level == "image" and single.prediction_columns == ("malignant_pred",)
    for spec in (nyu, single):
        assert dict(spec.center_windows) == {"CC": (2677, 1942), "MLO": (2974, 1748)}
        assert spec.variants == ("image_only", "image_heatmaps")
        assert spec.weight_file("patch_classifier").filename == "sample_patch_model.p"
    assert nyu.weight_file("image_heatmaps").filename == "sample_imageheatmaps_model.p"
    assert single.weight_file("image_only").filename == "ImageOnly__ModeImage_weights.p"


def exam(prefix, counts=None, **views):
    counts = counts or {}
    data = {"horizontal_flip": "NO", **{v: [f"{prefix}_{v}_{i}" for i in range(counts.get(v, 1))] for v in VIEWS}}
    data.update(views)
    return data


def test_exam_random_states_are_laid_out_for_the_whole_run(view_wise_file, tmp_path):
    exams = exams_from_data([exam("a"), exam("b", **{"L-MLO": []}), exam("c", counts={"R-CC": 3}), exam("d")])
    predictor = build_nyu_model(view_wise_file, device="cpu", seed=4)
    assert isinstance(predictor, ViewWiseDMVPredictor)  # the view-wise file builds the view-wise predictor
    predictor.plan(exams, tmp_path)
    assert sorted(predictor._exam_states) == [0, 2, 3]  # the incomplete exam draws nothing

    def position(state):
        rng = np.random.RandomState()
        rng.set_state(state)
        return rng.uniform()

    official = np.random.RandomState(4)
    assert position(predictor._exam_states[0]) == position(official.get_state())
    official.uniform(-1, 1, 4 * 6)  # exam a: one image per view -> randint draws nothing
    assert position(predictor._exam_states[2]) == position(official.get_state())
    for view in VIEWS:  # exam c: R-CC has three images -> randint draws
        official.randint(0, 3 if view == "R-CC" else 1)
        official.uniform(-1, 1, 6)
    assert position(predictor._exam_states[3]) == position(official.get_state())


def test_single_model_draws_one_image_per_view_in_its_order(tmp_path):
    one_channel = tmp_path / "one.p"
    torch.manual_seed(2)
    torch.save({"model": ImageWiseDMV(1).state_dict()}, one_channel)
    exams = exams_from_data([exam("a", counts={"L-CC": 3, "R-MLO": 2}), exam("b", **{"L-MLO": [], "R-MLO": []})])
    predictor = build_nyu_model_single(one_channel, device="cpu", seed=0)
    assert isinstance(predictor, ImageWiseDMVPredictor)
    chosen = [r.name for r in predictor.select_images(exams)]
    rng = np.random.RandomState(0)
    expected = [f"a_L-CC_{rng.randint(0, 3)}", "a_L-MLO_0", "a_R-CC_0", f"a_R-MLO_{rng.randint(0, 2)}",
                "b_L-CC_0", "b_R-CC_0"]
    assert chosen == expected
    every = build_nyu_model_single(one_channel, device="cpu", every_image=True)
    assert [r.name for r in every.select_images(exams)] == [
        "a_L-CC_0", "a_L-CC_1", "a_L-CC_2", "a_L-MLO_0", "a_R-CC_0", "a_R-MLO_0", "a_R-MLO_1", "b_L-CC_0", "b_R-CC_0"]


def test_cli_rejects_options_a_model_does_not_take(tmp_path, capsys, view_wise_file):
    exam_list = tmp_path / "exams.json"
    exam_list.write_text('[{"horizontal_flip": "NO", "L-CC": ["x"]}]')
    base = ["predict", "--images", str(tmp_path), "--exam-list", str(exam_list), "--output-dir", str(tmp_path / "o"),
            "--device", "cpu", "--quiet"]
    assert main(base + ["--model", "gmic", "--weights", str(view_wise_file), "--seed", "3"]) == 2
    assert "gmic does not take --seed" in capsys.readouterr().err
    assert main(base + ["--model", "nyu_model", "--weights", str(view_wise_file), "--heatmaps"]) == 2
    assert "needs the patch classifier" in capsys.readouterr().err
    bfloat16 = ["--heatmap-precision", "bfloat16"]
    assert main(base + ["--model", "nyu_model", "--weights", str(view_wise_file)] + bfloat16) == 2
    assert "--heatmap-precision applies only to the image+heatmaps variant" in capsys.readouterr().err
    assert main(base + ["--model", "gmic", "--weights", str(view_wise_file)] + bfloat16) == 2
    assert "gmic does not take --heatmap-precision" in capsys.readouterr().err


@pytest.mark.slow
def test_heatmaps_variant_end_to_end_on_generated_data(tmp_path, capsys):
    """predict with --heatmaps on synthetic crops: CSV layout, maps, 16-bit heatmap PNGs in original orientation."""
    from testutils import synthetic_breast

    from mammoscreen.data import read_png, write_png
    from mammoscreen.data.exams import exams_to_data
    from mammoscreen.models.layers.densenet import densenet121

    torch.manual_seed(3)
    weights, patch_weights = tmp_path / "single.p", tmp_path / "patch.p"
    torch.save({"model": ImageWiseDMV(3).state_dict()}, weights)
    patch_model = densenet121()
    torch.save(patch_model.state_dict(), patch_weights)
    images = tmp_path / "cropped"
    names = {"L-CC": "e_L-CC", "R-CC": "e_R-CC"}
    for view, name in names.items():  # 4 patches each (one column: the width is one patch)
        write_png(images / f"{name}.png", synthetic_breast((400, 256), facing="left" if view[0] == "R" else "right",
                                                           seed=ord(view[0])))
    exam = {"horizontal_flip": "NO", **{v: [n] for v, n in names.items()}, "L-MLO": [], "R-MLO": [],
            "cancer_label": {"left_malignant": 1, "right_malignant": 0},
            "best_center": {"L-CC": [(200, -700)], "R-CC": [(210, -690)], "L-MLO": [], "R-MLO": []}}
    import pickle

    exam_list = tmp_path / "data.pkl"
    exam_list.write_bytes(pickle.dumps(exams_to_data(exams_from_data([exam])), protocol=4))
    out = tmp_path / "out"
    code = main(["predict", "--model", "nyu_model_single", "--weights", str(weights), "--heatmaps",
                 "--patch-weights", str(patch_weights), "--images", str(images), "--exam-list", str(exam_list),
                 "--output-dir", str(out), "--device", "cpu", "--save-maps", "--save-heatmap-pngs", "--quiet"])
    assert code == 0, capsys.readouterr().err
    lines = (out / "predictions.csv").read_text().splitlines()
    assert lines[0] == ",image_index,malignant_pred,malignant_label"
    assert [line.split(",")[1] for line in lines[1:]] == ["e_L-CC", "e_R-CC"]
    assert [line.split(",")[3] for line in lines[1:]] == ["1", "0"]
    for name in names.values():
        maps = np.load(out / "maps" / f"{name}.npz")
        assert maps["heatmap_benign"].shape == (400, 256) and len(maps["patch_probabilities"]) == 4
        assert 0 <= maps["heatmap_malignant"].min() and maps["heatmap_malignant"].max() <= 1
        png = read_png(out / "heatmaps" / "heatmap_benign" / f"{name}.png")
        assert png.dtype == np.uint16
        assert np.array_equal(png, np.round(maps["heatmap_benign"] * 65535).astype(np.uint16))
        assert maps["probabilities"].shape == (2,) and maps["logp"].shape == (1, 2, 2)
