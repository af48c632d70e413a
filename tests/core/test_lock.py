"""One writer per output directory: the lock between real processes, re-entrant within one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from mammoscreen.core.lock import LOCK_FILE, OutputBusyError, output_lock

HOLD = textwrap.dedent("""
    import sys, time
    from mammoscreen.core.lock import output_lock
    with output_lock(sys.argv[1], command="mammoscreen run --weights first"):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _hold(directory, seconds=60.0) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), str(seconds)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_process_is_refused_with_the_holders_pid_and_command(tmp_path):
    holder = _hold(tmp_path / "out")
    try:
        with pytest.raises(OutputBusyError) as refused:
            with output_lock(tmp_path / "out"):
                pass
        message = str(refused.value)
        assert f"PID {holder.pid}: mammoscreen run --weights first" in message
        assert str(tmp_path / "out") in message and "\n" not in message
    finally:
        holder.kill()
        holder.wait()
    # The operating system released it with the holder: no stale lock to remove by hand.
    with output_lock(tmp_path / "out"):
        assert (tmp_path / "out" / LOCK_FILE).is_file()


def test_the_lock_is_reentrant_in_one_process_and_released_at_the_end(tmp_path):
    with output_lock(tmp_path / "out"):
        with output_lock(tmp_path / "out"):  # a run calling a stage that locks the same folder
            pass
        probe = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path / "out"), "0"], capture_output=True,
                               text=True)
        assert probe.returncode != 0 and "OutputBusyError" in probe.stderr
    probe = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path / "out"), "0"], capture_output=True, text=True)
    assert probe.returncode == 0


def test_forked_workers_do_not_keep_the_lock_after_their_parent(tmp_path):
    # A worker process forked while the lock is held (crop workers) must not hold it once the parent is gone.
    read_end, write_end = os.pipe()
    ready_read, ready_write = os.pipe()
    with output_lock(tmp_path / "out"):
        pid = os.fork()
        if pid == 0:  # the worker: outlives the parent's lock, blocked on the pipe
            os.close(write_end)
            os.write(ready_write, b"r")
            os.read(read_end, 1)
            os._exit(0)
        assert os.read(ready_read, 1) == b"r"  # the child is running (past its fork handlers)
    os.close(read_end)
    try:
        with output_lock(tmp_path / "out"):  # released although the child is still alive
            pass
        probe = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path / "out"), "0"], capture_output=True,
                               text=True)
        assert probe.returncode == 0, probe.stderr
    finally:
        os.write(write_end, b"x")
        os.close(write_end)
        os.waitpid(pid, 0)


def test_taking_the_lock_removes_temporary_files_of_a_killed_writer(tmp_path):
    out = tmp_path / "out"
    (out / "maps").mkdir(parents=True)
    (out / "model").mkdir()
    leftovers = [out / ".predictions.csv.ab12cd_9.tmp", out / "maps" / ".0_L-CC.npz.zz99aa00.tmp"]
    kept = [out / "notes.tmp", out / "maps" / "0_L-CC.npz", out / "model" / ".x.png.abcdefgh.tmp"]
    (out / "model" / LOCK_FILE).write_text("")  # another stage's folder: cleaned when that stage locks it
    for path in leftovers + kept:
        path.write_text("x")
    with output_lock(out):
        pass
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in kept)
