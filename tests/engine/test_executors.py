"""The executor interface: any executor that runs the units (in any order, on workers that rebuild the
predictor) gives the same files as the local one, because journal, outputs and CSV stay the engine's."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from test_predict_exams import ExamMeans, four, make_exams
from test_predict_images import MeanIntensity, make_data

from mammoscreen.engine import PredictOptions, predict_exams, predict_images
from mammoscreen.engine.work import UnitRunner
from mammoscreen.models import PredictorRequest, build_predictor, request_of


class ReversedWorkers:
    """A stand-in for a distributed executor: fresh predictors per chunk, results travelling by pickle, last unit
    first, figures rendered where the unit ran."""

    def __init__(self, make_predictor, chunk=2):
        self.make_predictor, self.chunk, self.runners = make_predictor, chunk, 0

    def run(self, predictor, job, units):
        outcomes = []
        for start in range(0, len(units), self.chunk):
            self.runners += 1
            runner = UnitRunner(self.make_predictor(), pickle.loads(pickle.dumps(job)), figures_as_bytes=True)
            chunk = pickle.loads(pickle.dumps(units[start:start + self.chunk]))
            outcomes += [pickle.loads(pickle.dumps(o)) for o in runner.process(chunk)]
        yield from reversed(outcomes)


def _files(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def _maps(directory):
    return {p.name: dict(np.load(p)) for p in sorted((directory / "maps").glob("*.npz"))}


def test_image_units_in_any_order_on_rebuilt_predictors_give_the_local_files(tmp_path):
    images, exams = make_data(tmp_path, [
        {"R-MLO": "a_rmlo", "L-CC": "a_lcc", "R-CC": "missing_rcc", "L-MLO": "a_boom"},
        {"R-CC": "b_rcc", "L-CC": "b_lcc"}, {"L-MLO": "c_lmlo"}])
    options = dict(batch_size=2, save_maps=True, visualize=True, progress=False)
    local = predict_images(MeanIntensity(), exams, images, tmp_path / "local", PredictOptions(**options))
    workers = ReversedWorkers(MeanIntensity)
    remote = predict_images(MeanIntensity(), exams, images, tmp_path / "remote",
                            PredictOptions(**options, executor=workers))
    assert workers.runners == 4  # seven images, two per worker
    assert remote.rows == local.rows and len(remote.rows) == 5
    assert [(f.name, f.reason) for f in remote.failures] == [(f.name, f.reason) for f in local.failures]
    local_files, remote_files = _files(tmp_path / "local"), _files(tmp_path / "remote")
    assert local_files.keys() == remote_files.keys()
    for name in ("predictions.csv", "failures.csv", "visualization/a_lcc.png"):
        assert remote_files[name] == local_files[name]
    local_maps, remote_maps = _maps(tmp_path / "local"), _maps(tmp_path / "remote")
    assert local_maps.keys() == remote_maps.keys() and len(local_maps) == 5
    for name in local_maps:
        assert local_maps[name].keys() == remote_maps[name].keys()
        for key in local_maps[name]:
            np.testing.assert_array_equal(remote_maps[name][key], local_maps[name][key])
    # the journal the other executor wrote is the local one's: a local re-run reuses everything
    again = predict_images(MeanIntensity(), exams, images, tmp_path / "remote", PredictOptions(**options))
    assert again.reused == 5 and again.rows == local.rows


def test_exam_units_are_planned_on_every_worker_and_give_the_local_rows(tmp_path):
    images, exams = make_exams(tmp_path, [four("a"), {"L-CC": "c_L-CC"}, four("b"), four("d")])
    options = dict(progress=False, save_maps=True)
    local = predict_exams(ExamMeans(), exams, images, tmp_path / "local", PredictOptions(**options))
    built = []

    def make():
        built.append(ExamMeans())
        return built[-1]

    remote = predict_exams(ExamMeans(), exams, images, tmp_path / "remote",
                           PredictOptions(**options, executor=ReversedWorkers(make)))
    assert remote.rows == local.rows and [r["exam_index"] for r in remote.rows] == [0, 2, 3]
    assert all(p.planned == len(exams) for p in built) and len(built) == 2
    assert _files(tmp_path / "remote")["predictions.csv"] == _files(tmp_path / "local")["predictions.csv"]
    assert _files(tmp_path / "remote")["failures.csv"] == _files(tmp_path / "local")["failures.csv"]


def test_a_request_is_picklable_and_rebuilds_the_predictor_it_describes():
    request = PredictorRequest("gmic_demo", weights=None, device="cpu")
    assert pickle.loads(pickle.dumps(request)) == request
    predictor = build_predictor(request)
    assert request_of(predictor) is request
    again = build_predictor(pickle.loads(pickle.dumps(request)))
    assert again.provenance() == predictor.provenance()
    with pytest.raises(ValueError, match="not built by build_predictor"):
        request_of(MeanIntensity())
