"""The cheap pre-flight check of weights made before a long run starts."""

from __future__ import annotations

from mammoscreen.models.registry import get_model_spec
from mammoscreen.models.weights import weights_problem


def test_files_directories_and_the_official_cache(tmp_path, monkeypatch):
    gmic = get_model_spec("gmic")
    monkeypatch.setenv("MAMMOSCREEN_HOME", str(tmp_path / "cache"))
    assert "no weights given for gmic" in weights_problem(gmic, None)
    assert "not found" in weights_problem(gmic, tmp_path / "absent.p")
    (tmp_path / "sample_model_1.p").write_bytes(b"x")
    assert weights_problem(gmic, tmp_path / "sample_model_1.p") is None
    assert weights_problem(gmic, tmp_path, "1") is None
    assert "sample_model_2.p" in weights_problem(gmic, tmp_path, "2")
    # The ensemble needs all five files; a single file cannot provide them.
    assert "sample_model_2.p, sample_model_3.p" in weights_problem(gmic, tmp_path, "ensemble")
    assert "needs 5 weight files" in weights_problem(gmic, tmp_path / "sample_model_1.p", "ensemble")
    # 'official': cached or downloadable is fine (the download itself happens when the model is built).
    assert weights_problem(gmic, "official", "ensemble") is None
    # A file published without a sha256 is downloaded only with --allow-unverified; plain http never.
    glam = get_model_spec("nyu_glam")
    assert "--allow-unverified" in weights_problem(glam, "official", "model_sep")
    monkeypatch.setattr("mammoscreen.models.weights._ALLOW_UNVERIFIED", True)
    assert weights_problem(glam, "official", "model_sep") is None
    assert "plain http" in weights_problem(get_model_spec("frcnn_cad"), "official")
