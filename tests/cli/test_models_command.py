"""``mammoscreen models``."""

from __future__ import annotations

import json

from mammoscreen.cli import main


def test_lists_every_model_with_licence_input_output_variants_and_weights(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for text in ("gmic: GMIC-ResNet-18", "nyu_glam: GLAM", "licence of the weights: non-commercial",
                 "output: image-level, columns benign_pred, malignant_pred",
                 "variants: model_joint (default), model_sep", "model_joint.ckpt",
                 "https://github.com/nyukat/GLAM/raw/master/models/model_sep.ckpt", "sample_model_5.p"):
        assert text in out


def test_json_output_and_unknown_model(capsys):
    assert main(["models", "nyu_glam", "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert info["name"] == "nyu_glam" and info["output_level"] == "image"
    assert info["windows"] == {"CC": [2944, 1920], "MLO": [2944, 1920]}
    assert info["weights"]["model_sep"]["file"] == "model_sep.ckpt" and info["weights"]["model_sep"]["sha256"] is None
    assert main(["models", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
