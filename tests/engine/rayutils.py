"""Ray clusters for the Ray-engine tests, and comparing two runs' output directories file by file.

Every cluster runs on 127.0.0.1 with small object stores, is bounded in time and is shut down by its
fixture. Import as ``from rayutils import ...`` (like ``testutils``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

# Before Ray is imported anywhere: node addresses on the loopback interface (read once, at import), and no
# token for these throw-away clusters that only this machine can reach.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

OBJECT_STORE = 100 * 1024 * 1024  # per node: results travel one batch at a time

# Fields of run_summary.json that may differ between a local and a Ray run of the same command: when it
# finished, the command line itself (it names the engine) and the engine's own provenance (which nodes
# ran what). Everything else - and every other file - must be identical.
ENGINE_PROVENANCE_FIELDS = ("finished", "command", "engine")


@contextlib.contextmanager
def local_cluster(nodes: int = 1, cpus_per_node: int = 1) -> Iterator[object]:
    """A Ray cluster of ``nodes`` nodes on this machine (127.0.0.1), this process connected to it."""
    with started_cluster(nodes, cpus_per_node) as cluster, connected(cluster):
        yield cluster


@contextlib.contextmanager
def started_cluster(nodes: int = 1, cpus_per_node: int = 1) -> Iterator[object]:
    """A Ray cluster of ``nodes`` warm nodes on this machine (127.0.0.1), this process not connected to it: a
    module can share one between tests (each connects with :func:`connected` if it needs to), which saves a
    cluster start per test. Tests that remove nodes start their own."""
    import ray
    from ray.cluster_utils import Cluster

    args = {"num_cpus": cpus_per_node, "object_store_memory": OBJECT_STORE}
    cluster = Cluster(initialize_head=True, head_node_args={**args, "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(**args)
        with connected(cluster):
            cluster.wait_for_nodes(timeout=60)
            _start_a_worker_on_every_node()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@contextlib.contextmanager
def connected(cluster: object) -> Iterator[None]:
    """This process connected to ``cluster`` for the duration."""
    import ray

    ray.init(address=cluster.address, log_to_driver=False)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        ray.shutdown()


def _start_a_worker_on_every_node(timeout: float = 120) -> None:
    # A node whose first worker process is still starting takes no tasks yet, and Ray then places a short
    # stage's tasks on the nodes that are ready; tests that check where work ran start from warm nodes.
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def where() -> str:
        return ray.get_runtime_context().get_node_id()

    calls = [where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()
             for node in node_ids()]
    assert sorted(ray.get(calls, timeout=timeout)) == node_ids()


def node_ids() -> list[str]:
    import ray

    return sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])


def run_mammoscreen(args: Sequence[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """``mammoscreen ARGS`` in a child process (a real driver), failing the test on a non-zero exit."""
    done = subprocess.run([sys.executable, "-m", "mammoscreen", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def summary_without_engine(path: Path, output_dir: Path) -> dict:
    """run_summary.json without the engine's fields, the output directory's own path written as OUTPUT."""
    summary = json.loads(path.read_text().replace(json.dumps(str(output_dir))[1:-1], "OUTPUT"))
    for field in ENGINE_PROVENANCE_FIELDS:
        summary["run"].pop(field, None)
    return summary


def assert_same_outputs(local: Path, other: Path) -> list[str]:
    """Every output file of ``other`` equals ``local``'s: CSV, PNG and JSON byte for byte, exam lists (.pkl)
    exam for exam, maps array for array (``np.array_equal``, same keys and dtypes), run_summary.json but for
    :data:`ENGINE_PROVENANCE_FIELDS` (and the output directory's own path, which the summary names).
    Journals and locks (states of files, PIDs) are not outputs.
    Returns the files compared."""
    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}

    names = files(local)
    assert files(other) == names
    for name in sorted(names):
        a, b = local / name, other / name
        if name.endswith(".npz"):
            with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
                assert sorted(x.files) == sorted(y.files), name
                for key in x.files:
                    assert x[key].dtype == y[key].dtype and np.array_equal(x[key], y[key]), (name, key)
        elif name.endswith(".pkl"):  # exam lists: the same exams, read back by the safe loader (their pickled
            # bytes can differ in pickle's memo - whether equal strings were one object - not in content)
            from mammoscreen.data.exams import load_exam_list

            assert [e.to_dict() for e in load_exam_list(a)] == [e.to_dict() for e in load_exam_list(b)], name
        elif name.endswith("run_summary.json"):
            assert summary_without_engine(a, local) == summary_without_engine(b, other), name
        else:
            assert a.read_bytes() == b.read_bytes(), name
    return sorted(names)
