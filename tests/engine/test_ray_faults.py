"""Faults during a Ray run: a killed worker actor, a lost node, a killed driver, a bad image.

Why this proves the claims: the bundled ``gmic_demo`` (a real GMIC, small) predicts 16 synthetic images
with maps and figures, one of them a corrupt PNG; the local engine's output directory for the same
inputs is the reference. Each fault is injected while the run is in progress (after the first image's
result arrived, before the last), through Ray's own API (``ray.kill``, ``Cluster.remove_node``) or a
SIGKILL of the driver process, and the finished directory must equal the local one file for file - so
no image was lost, duplicated or mixed up, and the corrupt image stayed one failure in failures.csv.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rayutils import assert_same_outputs, connected, local_cluster, node_ids, run_mammoscreen, started_cluster

pytestmark = pytest.mark.slow

DEADLINE = 300  # seconds any one run may take here


@pytest.fixture(scope="module")
def demo_inputs(synthetic_dataset, tmp_path_factory):
    """(cropped images, exam list with centres, the local engine's predict output) for gmic_demo."""
    root = tmp_path_factory.mktemp("ray_faults")
    run_mammoscreen(["run", "--models", "gmic_demo", "--images", synthetic_dataset / "images", "--exam-list",
                     synthetic_dataset / "exam_list.pkl", "--output-dir", root / "prep", "--device", "cpu",
                     "--no-evaluate", "--quiet", "--workers", "1"])
    images = root / "cropped"
    shutil.copytree(root / "prep" / "cropped_images", images, ignore=shutil.ignore_patterns(".*", "*.pkl"))
    victim = sorted(images.glob("*.png"))[5]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated: a per-image failure, in every engine
    exam_list = next((root / "prep").glob("data_*.pkl"))
    local = root / "local"
    run_mammoscreen(_predict(images, exam_list, local))
    return images, exam_list, local, victim.stem


@pytest.fixture(scope="module")
def one_node():
    """One single-node cluster (2 CPUs) shared by the tests that kill an actor or the driver, not a node."""
    with started_cluster(nodes=1, cpus_per_node=2) as cluster:
        yield cluster


def _predict(images, exam_list, output, *extra):
    return ["predict", "--model", "gmic_demo", "--images", images, "--exam-list", exam_list, "--output-dir", output,
            "--device", "cpu", "--save-maps", "--visualize", "--quiet", *extra]


def _run_in_thread(images, exam_list, output, executor):
    """The engine in a background thread (the test injects the fault from this one)."""
    from mammoscreen.data.exams import load_exam_list
    from mammoscreen.engine import PredictOptions, run_prediction
    from mammoscreen.models.factory import PredictorRequest, build_predictor

    predictor = build_predictor(PredictorRequest("gmic_demo", "official", None, "cpu"))
    result: dict = {}

    def target():
        try:
            result["run"] = run_prediction(predictor, load_exam_list(exam_list), images, output,
                                           PredictOptions(device="cpu", save_maps=True, visualize=True,
                                                          progress=False, executor=executor))
        except BaseException as error:  # noqa: BLE001 - re-raised in the test
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def _wait_for(condition, what):
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def _finish(thread, result):
    thread.join(DEADLINE)
    assert not thread.is_alive(), "the run did not finish"
    if "error" in result:
        raise result["error"]
    return result["run"]


def test_lost_worker_node_run_finishes_with_same_outputs(demo_inputs, tmp_path):
    from mammoscreen.engine.ray import RayExecutor, RaySettings

    # First in the module: it starts its own cluster (it removes a node) before the shared one exists.
    images, exam_list, local, victim = demo_inputs
    with local_cluster(nodes=1, cpus_per_node=1) as cluster:
        head = node_ids()[0]
        worker_node = cluster.add_node(num_cpus=1, object_store_memory=100 * 1024 * 1024)
        cluster.wait_for_nodes(timeout=60)
        executor = RayExecutor(RaySettings(num_workers=2))
        thread, result = _run_in_thread(images, exam_list, tmp_path / "ray", executor)
        _wait_for(lambda: any(n != head for n in executor.last_run.ran_on.values()), "a result from the second node")
        assert len(executor.last_run.ran_on) < 12, "the run finished before the fault could be injected"
        cluster.remove_node(worker_node)
        run = _finish(thread, result)
    assert executor.last_run.workers_lost >= 1
    assert len(set(executor.last_run.ran_on.values())) == 2  # both nodes ran images before the node went
    assert [f.name for f in run.failures] == [victim]
    assert_same_outputs(local, tmp_path / "ray")


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_run_without_faults_equals_local_run(demo_inputs, one_node, workers, tmp_path):
    """The baseline of the fault tests: gmic_demo with one Ray worker and with two, maps, figures and the corrupt
    image's failure included, writes the local engine's files."""
    from mammoscreen.engine.ray import RayExecutor, RaySettings

    images, exam_list, local, victim = demo_inputs
    with connected(one_node):
        executor = RayExecutor(RaySettings(num_workers=workers))
        thread, result = _run_in_thread(images, exam_list, tmp_path / "ray", executor)
        run = _finish(thread, result)
    assert executor.last_run.workers == workers and executor.last_run.workers_lost == 0
    assert len(executor.last_run.ran_on) == 15  # every image but the corrupt one ran on a worker
    assert [f.name for f in run.failures] == [victim]
    assert {"predictions.csv", "failures.csv"} <= set(assert_same_outputs(local, tmp_path / "ray"))


def test_killed_worker_actor_run_finishes_with_same_outputs(demo_inputs, one_node, tmp_path):
    import ray

    from mammoscreen.engine.ray import RayExecutor, RaySettings

    images, exam_list, local, victim = demo_inputs
    with connected(one_node):
        executor = RayExecutor(RaySettings(num_workers=2))
        thread, result = _run_in_thread(images, exam_list, tmp_path / "ray", executor)
        _wait_for(lambda: len(executor.last_run.ran_on) >= 1 and len(executor.live_actors) == 2, "a first result")
        assert len(executor.last_run.ran_on) < 12, "the run finished before the fault could be injected"
        ray.kill(executor.live_actors[0])
        run = _finish(thread, result)
    assert executor.last_run.workers_lost >= 1
    assert [f.name for f in run.failures] == [victim]
    assert_same_outputs(local, tmp_path / "ray")


def test_killed_driver_rerun_continues_from_journal(demo_inputs, one_node, tmp_path):
    images, exam_list, local, _ = demo_inputs
    output = tmp_path / "ray"
    journal = output / ".predict_journal.jsonl"
    command = _predict(images, exam_list, output, "--engine", "ray", "--address", one_node.address,
                       "--num-workers", "2")
    driver = subprocess.Popen([sys.executable, "-m", "mammoscreen", *map(str, command)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: journal.is_file() and len(journal.read_text().splitlines()) >= 3, "journaled images")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(60)
    journaled = {json.loads(line)["key"] for line in journal.read_text().splitlines()[1:] if line.endswith("}")}
    kept = {f"{name}.npz": (output / "maps" / f"{name}.npz").stat().st_mtime_ns for name in journaled}
    assert 1 <= len(kept) < 15, "the driver finished before it was killed"
    run_mammoscreen(command, timeout=DEADLINE)
    assert_same_outputs(local, output)
    # The images finished before the kill were taken from the journal, not predicted again.
    assert {name: (output / "maps" / name).stat().st_mtime_ns for name in kept} == kept


def test_workers_that_cannot_build_the_model_stop_the_run_with_the_reason(demo_inputs, one_node, tmp_path):
    """Weights the driver could read but the workers cannot (not on a shared path): one clear error, no hang."""
    from mammoscreen.data.exams import load_exam_list
    from mammoscreen.engine import PredictOptions, run_prediction
    from mammoscreen.engine.ray import RayExecutor, RaySettings
    from mammoscreen.engine.ray.executor import WorkerStartError
    from mammoscreen.models.factory import PredictorRequest, build_predictor
    import mammoscreen.models
    from mammoscreen.models.gmic_demo.predictor import DEMO_WEIGHTS

    images, exam_list, _, _ = demo_inputs
    bundled = Path(mammoscreen.models.__file__).parent / "pretrained" / DEMO_WEIGHTS
    weights = tmp_path / DEMO_WEIGHTS
    shutil.copyfile(bundled, weights)
    shutil.copyfile(bundled.with_suffix(".json"), weights.with_suffix(".json"))
    predictor = build_predictor(PredictorRequest("gmic_demo", weights, None, "cpu"))
    weights.unlink()  # gone before the workers load it
    with connected(one_node):
        with pytest.raises(WorkerStartError, match="could not build gmic_demo"):
            run_prediction(predictor, load_exam_list(exam_list), images, tmp_path / "out",
                           PredictOptions(device="cpu", progress=False,
                                          executor=RayExecutor(RaySettings(num_workers=1))))


class _FailsToUnpickle:
    """Pickles fine, but unpickling raises: what a worker whose environment differs from the driver's (another
    mammoscreen version, a missing dependency) meets when it builds its actor."""

    def __reduce__(self):
        import operator

        return operator.truediv, (1, 0)


def test_workers_that_cannot_start_stop_the_run_after_a_few_attempts(demo_inputs, one_node, tmp_path):
    """A worker that dies while it starts (not a model error it can report) is started again a few times, then the
    run stops with one line naming the cause - not an endless loop of new workers."""
    import dataclasses

    from mammoscreen.data.exams import load_exam_list
    from mammoscreen.engine import PredictOptions, run_prediction
    from mammoscreen.engine.ray import RayExecutor, RaySettings
    from mammoscreen.engine.ray.executor import MAX_ATTEMPTS, WorkerStartError
    from mammoscreen.models.factory import PredictorRequest, build_predictor

    images, exam_list, _, _ = demo_inputs
    predictor = build_predictor(PredictorRequest("gmic_demo", "official", None, "cpu"))
    predictor.request = dataclasses.replace(predictor.request, weights=_FailsToUnpickle())
    executor = RayExecutor(RaySettings(num_workers=1))
    with connected(one_node):
        with pytest.raises(WorkerStartError) as raised:
            run_prediction(predictor, load_exam_list(exam_list), images, tmp_path / "out",
                           PredictOptions(device="cpu", progress=False, executor=executor))
    message = str(raised.value)
    assert message.startswith(f"Ray workers could not start ({MAX_ATTEMPTS} attempts): ") and "\n" not in message
    assert "ZeroDivisionError: division by zero" in message, message
