"""Typed model options, weight records with their preprocessing, and the one factory every model is built by."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammoscreen.models import PredictorRequest, build_predictor, list_models
from mammoscreen.models.options import ModelOptions
from mammoscreen.models.preprocessing import Preprocessing
from mammoscreen.models.registry import get_model_spec


def test_options_parse_the_command_lines_strings_into_typed_values():
    options = get_model_spec("nyu_model_single").options.parse(
        {"seed": "3", "epochs": "2", "every_image": "yes", "heatmap_png_dir": "out/heatmaps",
         "patch_weights": "official"}, "nyu_model_single")
    assert (options.seed, options.epochs, options.every_image) == (3, 2, True)
    assert options.heatmap_png_dir == Path("out/heatmaps") and options.patch_weights == "official"
    assert options.heatmap_precision == "float32" and options.fast_heatmaps is True  # defaults kept
    end2end = get_model_spec("end2end").options
    assert end2end.parse({"mean_pixel_intensity": "31.28"}, "end2end").mean_pixel_intensity == 31.28
    assert end2end.parse({"mean_pixel_intensity": "nyu"}, "end2end").mean_pixel_intensity == "nyu"


@pytest.mark.parametrize("model, values, message", [
    ("nyu_model", {"sed": "3"}, "model nyu_model has no option sed; its options: patch_weights, seed"),
    ("nyu_model", {"seed": "three"}, "option seed of nyu_model: expected a whole number"),
    ("nyu_model_single", {"every_image": "perhaps"}, "expected a yes/no value"),
    ("gmic", {"seed": "1"}, "model gmic has no option seed"),
    ("gmic", {"config": "gmic-demo"}, "settable from Python only"),
    ("frcnn_cad", {"seed": "1"}, "its options: none"),
    ("end2end", {"mean_pixel_intensity": "mars"}, "mars"),
])
def test_a_wrong_option_is_one_clear_error(model, values, message):
    spec = get_model_spec(model)
    with pytest.raises(ValueError, match=message):
        spec.options.parse(values, spec.name)


def test_every_model_declares_options_and_a_preprocessing_record_the_pipeline_follows():
    for spec in list_models():
        assert issubclass(spec.options, ModelOptions)
        spec.options.parse({}, spec.name)  # the defaults are valid
        assert isinstance(spec.preprocessing, Preprocessing), spec.name
        assert spec.needs_crop == spec.preprocessing.crop
        assert spec.center_windows == spec.preprocessing.windows
        assert spec.input_description
        for wf in spec.weights.values():
            assert wf.preprocessing == spec.preprocessing  # every weight record carries its preprocessing


def test_the_published_windows_and_top_t_travel_with_the_weights():
    gmic = get_model_spec("gmic")
    assert dict(gmic.preprocessing.windows) == {"CC": (2944, 1920), "MLO": (2944, 1920)}
    assert gmic.preprocessing.describe() == ("cropped 16-bit PNG, breast mirrored to face right, 2944x1920 window "
                                             "around best_center, standardised per image")
    # GMIC's published top-t% per checkpoint (nyukat/GMIC, src/constants.py)
    assert {k: wf.config["percent_t"] for k, wf in gmic.weights.items()} == {
        "1": 0.02, "2": 0.03, "3": 0.03, "4": 0.05, "5": 0.10}
    assert dict(get_model_spec("nyu_model").preprocessing.windows) == {"CC": (2677, 1942), "MLO": (2974, 1748)}
    assert get_model_spec("end2end").preprocessing.crop is False



def test_the_centre_stage_takes_its_windows_from_the_model_records():
    import inspect

    from mammoscreen.cli.preprocess import centre_windows
    from mammoscreen.preprocess import centers

    # preprocess/ knows no model's window: the stage must be given one (the run passes each model's record)
    assert inspect.signature(centers.centers_dataset).parameters["windows"].default is inspect.Parameter.empty
    assert inspect.signature(centers.optimal_center).parameters["window"].default is inspect.Parameter.empty
    assert not hasattr(centers, "GMIC_WINDOWS")
    # 'mammoscreen centers' without --window uses GMIC's record; --window applies to every view
    assert centre_windows(None) == dict(get_model_spec("gmic").preprocessing.windows) == \
        {"CC": (2944, 1920), "MLO": (2944, 1920)}
    assert centre_windows([300, 200]) == {"CC": (300, 200), "MLO": (300, 200)}


def test_mammoscreen_models_json_shows_the_preprocessing_record_and_options(capsys):
    import json

    from mammoscreen.cli import main

    assert main(["models", "nyu_model", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)[0]
    assert info["preprocessing"]["windows"] == {"CC": [2677, 1942], "MLO": [2974, 1748]}
    assert info["preprocessing"]["seed"] == 0 and info["preprocessing"]["flip"] == "face right"
    assert "patch_weights" in info["options"] and "every_image" not in info["options"]


def test_the_factory_checks_variant_and_weights_before_loading_anything(tmp_path):
    single = tmp_path / "sample_model_1.p"
    single.write_bytes(b"not read")
    with pytest.raises(ValueError, match=r"gmic ensemble needs 5 weight files \(sample_model_1.p, .*pass a directory"):
        build_predictor(PredictorRequest("gmic", single, "ensemble", "cpu"))
    with pytest.raises(ValueError, match="unknown gmic variant '6'"):
        build_predictor(PredictorRequest("gmic", single, "6", "cpu"))
    with pytest.raises(ValueError, match="model gmic has no option seed"):
        build_predictor(PredictorRequest("gmic", single, "1", "cpu", {"seed": 1}))
    with pytest.raises(ValueError, match="needs the patch classifier"):
        build_predictor(PredictorRequest("nyu_model", single, "image_heatmaps", "cpu"))


def test_the_cli_and_the_pipeline_no_longer_inspect_builder_signatures():
    import mammoscreen.cli.predict as cli_predict
    import mammoscreen.workflows.pipeline as pipeline

    for module in (cli_predict, pipeline):
        assert "inspect.signature" not in Path(module.__file__).read_text()
    # The CLI's MODEL=VALUE syntax is parsed in the CLI layer; the pipeline takes typed requests.
    assert not hasattr(pipeline, "model_requests") and not hasattr(pipeline, "ModelRequest")
