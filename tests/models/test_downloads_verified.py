"""Issue 16.4: downloads are verified or refused. A local HTTP server on 127.0.0.1 stands in for the web."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from functools import partial

import pytest

from mammoscreen.data.exams import Exam, save_exam_list
from mammoscreen.engine import PredictOptions
from mammoscreen.models import registry, weights
from mammoscreen.models.interfaces import ImagePrediction, Predictor
from mammoscreen.models.registry import ModelSpec, WeightFile
from mammoscreen.models.weights import WeightsError, download, official_weights_path, url_problem, weights_problem
from mammoscreen.models.factory import PredictorRequest
from mammoscreen.workflows.pipeline import run_pipeline


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://example.invalid/sample.p")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    # a short poll: shutdown() in the teardown waits up to one poll interval (0.5 s by default)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def fresh_policy(monkeypatch):
    monkeypatch.setattr(weights, "_ALLOW_UNVERIFIED", None)
    monkeypatch.delenv("MAMMOSCREEN_ALLOW_UNVERIFIED", raising=False)
    monkeypatch.setattr(weights, "UNVERIFIED_DOWNLOADS", [])


def _spec(url, sha256=None, name="toy"):
    return ModelSpec(name=name, title="toy", paper="-", license="-", output_level="image",
                     prediction_columns=("malignant_pred",),
                     weights={"1": WeightFile("toy.p", url, sha256)}, default_variant="1")


def test_plain_http_is_refused_except_from_this_machine(tmp_path):
    assert url_problem("https://github.com/x") is None
    assert url_problem("http://127.0.0.1:8000/x") is None and url_problem("http://localhost/x") is None
    assert "plain http" in url_problem("http://dkrib.web.elte.hu/cad_faster_rcnn/vgg16_frcnn_cad.caffemodel")
    assert "not an https URL" in url_problem("ftp://example.org/x")
    with pytest.raises(WeightsError, match="refusing to download.*plain http"):
        download("http://example.org/toy.p", tmp_path / "toy.p")
    assert not (tmp_path / "toy.p").exists()
    # The registry's frcnn_cad entry is published over plain http: never downloaded, with a message saying why.
    frcnn = registry.get_model_spec("frcnn_cad")
    assert "plain http" in weights_problem(frcnn, "official")


def test_a_redirect_to_plain_http_is_refused(server, tmp_path):
    _, base = server
    with pytest.raises(WeightsError, match="redirects to http://example.invalid/sample.p; refused"):
        download(base + "redirect", tmp_path / "toy.p")
    assert list(tmp_path.iterdir()) == [tmp_path / "served"]


def test_without_a_published_checksum_an_explicit_permission_is_needed(server, tmp_path):
    root, base = server
    payload = b"weights without a published checksum"
    (root / "toy.p").write_bytes(payload)
    spec = _spec(base + "toy.p")
    with pytest.raises(WeightsError, match="published without a sha256.*--allow-unverified"):
        official_weights_path(spec, directory=tmp_path / "cache")
    assert not (tmp_path / "cache" / "toy.p").exists()
    weights.allow_unverified_downloads(True)
    path = official_weights_path(spec, directory=tmp_path / "cache")
    assert path.read_bytes() == payload
    digest = hashlib.sha256(payload).hexdigest()
    assert weights.UNVERIFIED_DOWNLOADS == [{"model": "toy", "file": "toy.p", "url": base + "toy.p",
                                             "sha256": digest, "path": str(path)}]
    # A file with a published checksum needs no permission.
    verified = _spec(base + "toy.p", digest, name="toy2")
    weights.allow_unverified_downloads(False)
    assert official_weights_path(verified, directory=tmp_path / "cache2").read_bytes() == payload


class _Constant(Predictor):
    def __init__(self, spec, value):
        self.spec, self.value = spec, value

    def prepare(self, record, images_dir):
        return record.name

    def predict_batch(self, prepared):
        return [ImagePrediction({"malignant_pred": self.value}) for _ in prepared]


def test_the_sha256_of_an_unverified_download_is_in_the_run_summary(server, tmp_path, monkeypatch):
    root, base = server
    (root / "toy.p").write_text("0.5")
    monkeypatch.setenv("MAMMOSCREEN_HOME", str(tmp_path / "cache"))

    def build(paths, variant, device, options):  # the factory has found (and downloaded) the weight file
        return _Constant(registry.get_model_spec("download_toy"), float(paths[0].read_text()))

    spec = ModelSpec(name="download_toy", title="toy", paper="-", license="-", output_level="image",
                     prediction_columns=("malignant_pred",), needs_crop=False,
                     weights={"1": WeightFile("toy.p", base + "toy.p")}, default_variant="1", build=build)
    registry.list_models()
    monkeypatch.setitem(registry._REGISTRY, "download_toy", spec)
    exam = Exam(images={"L-CC": ["x1"], "R-CC": [], "L-MLO": [], "R-MLO": []}, cancer_label={"left_malignant": 1})
    exam_list = save_exam_list([exam], tmp_path / "exams.pkl")
    (tmp_path / "images").mkdir()
    options = PredictOptions(progress=False)
    with pytest.raises(WeightsError, match="--allow-unverified"):
        run_pipeline(tmp_path / "images", exam_list, tmp_path / "out", [PredictorRequest("download_toy", "official")],
                     options=options, log=lambda m: None)
    weights.allow_unverified_downloads(True)
    run_pipeline(tmp_path / "images", exam_list, tmp_path / "out", [PredictorRequest("download_toy", "official")],
                 options=options, log=lambda m: None)
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    recorded = summary["run"]["unverified_downloads"]
    assert [(d["model"], d["url"], d["sha256"]) for d in recorded] == \
        [("download_toy", base + "toy.p", hashlib.sha256(b"0.5").hexdigest())]


def test_the_model_listing_says_how_each_file_can_be_fetched(capsys, tmp_path, monkeypatch):
    from mammoscreen.cli import main

    monkeypatch.setenv("MAMMOSCREEN_HOME", str(tmp_path / "empty-cache"))
    assert main(["models", "frcnn_cad", "nyu_glam", "gmic"]) == 0
    listing = capsys.readouterr().out
    assert "vgg16_frcnn_cad.caffemodel  [published over plain http: not downloaded automatically" in listing
    assert "model_joint.ckpt  [downloadable with --allow-unverified; no published sha256]" in listing
    assert "sample_model_1.p  [downloadable; sha256 " in listing
