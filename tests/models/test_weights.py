"""Finding and downloading weights: a local HTTP server stands in for the published URL."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest

from mammoscreen.models.registry import ModelSpec, WeightFile, get_model_spec, list_models
from mammoscreen.models.weights import WeightsError, download, official_weights_path, resolve_weight_path


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # a short poll: shutdown() in the teardown waits up to one poll interval (0.5 s by default)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def spec_for(url, sha256):
    return ModelSpec(name="toy", title="toy", paper="-", license="-", output_level="image",
                     prediction_columns=("malignant_pred",),
                     weights={"1": WeightFile("toy.p", url, sha256)}, default_variant="1")


def test_download_verifies_and_moves_into_place(server, tmp_path):
    root, base = server
    payload = bytes(range(256)) * 1000
    (root / "toy.p").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    spec = spec_for(base + "toy.p", sha)
    cache = tmp_path / "cache"
    path = official_weights_path(spec, directory=cache)
    assert path.read_bytes() == payload
    # cached: served file removed, still found
    (root / "toy.p").unlink()
    assert official_weights_path(spec, directory=cache) == path


def test_corrupted_download_is_not_kept(server, tmp_path):
    root, base = server
    (root / "toy.p").write_bytes(b"tampered")
    spec = spec_for(base + "toy.p", hashlib.sha256(b"original").hexdigest())
    with pytest.raises(WeightsError, match="checksum mismatch"):
        official_weights_path(spec, directory=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_unreachable_url_and_offline_message(tmp_path):
    spec = spec_for("http://127.0.0.1:9/none.p", None)
    with pytest.raises(WeightsError, match="cannot download"):
        download("http://127.0.0.1:9/none.p", tmp_path / "x.p", timeout=2)
    with pytest.raises(WeightsError, match="are not in .* copy it there"):
        official_weights_path(spec, allow_download=False, directory=tmp_path)


def test_cached_file_with_the_wrong_hash_is_reported(tmp_path):
    (tmp_path / "toy.p").write_bytes(b"old")
    spec = spec_for(None, hashlib.sha256(b"new").hexdigest())
    with pytest.raises(WeightsError, match="does not match the published sha256"):
        official_weights_path(spec, directory=tmp_path)


def test_weights_argument_forms(tmp_path):
    spec = get_model_spec("gmic")
    (tmp_path / "sample_model_3.p").write_bytes(b"x")
    assert resolve_weight_path(spec, tmp_path, "3") == tmp_path / "sample_model_3.p"
    assert resolve_weight_path(spec, tmp_path / "sample_model_3.p", "1") == tmp_path / "sample_model_3.p"
    with pytest.raises(WeightsError, match="does not contain sample_model_2.p"):
        resolve_weight_path(spec, tmp_path, "2")
    with pytest.raises(WeightsError, match="weights file not found"):
        resolve_weight_path(spec, tmp_path / "nope.p", "1")


def test_gmic_registry_entry():
    spec = get_model_spec("gmic")
    assert spec in list_models()
    assert spec.variants == ("1", "2", "3", "4", "5", "ensemble")
    assert all(len(spec.weight_file(str(i)).sha256) == 64 for i in range(1, 6))
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        get_model_spec("nope")
