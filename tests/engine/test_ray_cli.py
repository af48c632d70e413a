"""The engine options on the command line, and Ray staying out of the local engine's way (fast tests)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clirun import assert_clean_error, run_cli


def test_ray_is_never_imported_by_mammoscreen_or_the_local_engine():
    code = ("import sys, mammoscreen, mammoscreen.cli, mammoscreen.workflows.pipeline, mammoscreen.engine\n"
            "import mammoscreen.engine.ray, mammoscreen.engine.choice\n"
            "from mammoscreen.engine.choice import open_engine\n"
            "with open_engine() as engine: assert engine.executor is None and engine.pool is None\n"
            "print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("command", ["run", "predict", "crop", "centers"])
def test_ray_options_without_engine_ray_are_refused(command, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    exam_list = tmp_path / "exams.json"
    exam_list.write_text("[]")
    output = ["--output", tmp_path / "out.pkl"] if command == "centers" else ["--output-dir", tmp_path / "out"]
    result = run_cli([command, "--images", images, "--exam-list", exam_list, *map(str, output), "--num-workers", "2",
                      "--address", "auto"])
    assert_clean_error(result, command, mentions=["--address", "--num-workers", "--engine ray"])
    assert not (tmp_path / "out").exists()


def test_ray_settings_are_checked():
    from mammoscreen.engine.choice import EngineChoice
    from mammoscreen.engine.ray import RaySettings

    with pytest.raises(ValueError, match="num-workers"):
        RaySettings(num_workers=0)
    with pytest.raises(ValueError, match="gpus-per-worker"):
        RaySettings(gpus_per_worker=-1)
    with pytest.raises(ValueError, match="unknown engine"):
        EngineChoice("spark")


def test_worker_errors_travel_with_the_local_description():
    import errno

    from mammoscreen.core.stages import Failure
    from mammoscreen.engine.ray.executor import RemoteError, _portable
    from mammoscreen.engine.work import UnitFailure, WorkUnit

    class ModelError(Exception):
        def __init__(self, code, detail):  # a signature pickle cannot rebuild from args
            super().__init__(f"model error {code}: {detail}")

    unit = WorkUnit("0_L-CC", "0_L-CC", (), {})
    for error in (ModelError(3, "bad weights"), ValueError("not a PNG"),
                  OSError(errno.ENOSPC, "No space left on device")):
        sent = _portable(UnitFailure(unit, error)).error
        assert Failure.of("0_L-CC", sent, "gmic") == Failure.of("0_L-CC", error, "gmic")
    assert isinstance(_portable(UnitFailure(unit, ModelError(1, "x"))).error, RemoteError)


def test_actor_calls_carry_whole_batches_and_keep_every_worker_busy():
    from mammoscreen.engine.ray.executor import MAX_BATCHES_PER_CALL, units_per_call

    assert units_per_call(100, 1, 1, 2) == MAX_BATCHES_PER_CALL  # 100 images, 1 worker: 13 calls of <= 8
    assert units_per_call(100, 1, 2, 2) == 6  # 2 workers: 17 calls, >= 4 per worker and depth
    assert units_per_call(16, 1, 2, 2) == 1  # few units per worker: one per call, the work stays balanced
    assert units_per_call(2, 1, 2, 2) == 1
    assert units_per_call(1000, 4, 2, 2) == 4 * MAX_BATCHES_PER_CALL  # whole forward batches of 4
    assert units_per_call(30, 4, 1, 2) == 4


@pytest.mark.slow
def test_a_local_instance_runs_its_workers_at_the_drivers_priority(monkeypatch):
    """Ray's default puts workers at nice +15, behind every other process; the instance a run starts for itself
    does not (the local engine's process runs at the user's priority too), and the variable is not left set."""
    import os

    import ray

    from mammoscreen.engine.ray import RaySettings, ray_session

    monkeypatch.delenv("RAY_worker_niceness", raising=False)
    with ray_session(RaySettings(num_workers=1)):
        assert "RAY_worker_niceness" not in os.environ

        @ray.remote(num_cpus=1)
        class Probe:
            def niceness(self) -> int:
                return os.nice(0)

        assert ray.get(Probe.remote().niceness.remote(), timeout=120) == os.nice(0)
