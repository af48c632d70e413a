"""Connecting to a Ray cluster, or starting a local Ray instance for one run."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator


@dataclass(frozen=True)
class RaySettings:
    """How the Ray engine runs: which cluster, how many model workers, GPUs and CPUs for each.

    ``address``: None starts a local Ray instance on this machine (stopped at the end of the run);
    ``'auto'`` joins the cluster this machine belongs to (``ray start``); ``'ray://host:10001'`` connects
    through Ray Client; ``'host:6379'`` to a head node's GCS. ``num_workers``: model actors (and
    concurrent preprocessing tasks); None: one per CPU the cluster has (each GPU worker takes
    ``gpus_per_worker`` GPUs, fractions share a GPU). ``threads_per_worker``: PyTorch threads of each model
    worker; None: as many as this (the driver's) process uses, which keeps the arithmetic - and so every
    map - bit-identical to a local run on this machine (a float sum over another number of threads rounds
    differently in the last bits). Set it to the workers' CPUs for speed when that identity does not matter.
    """

    address: str | None = None
    num_workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    threads_per_worker: int | None = None

    def __post_init__(self) -> None:
        if self.num_workers is not None and self.num_workers < 1:
            raise ValueError(f"--num-workers must be at least 1, got {self.num_workers}")
        if self.gpus_per_worker < 0:
            raise ValueError(f"--gpus-per-worker cannot be negative, got {self.gpus_per_worker}")

    def workers(self) -> int:
        """The number of workers: as given, or as many as the cluster has CPUs (GPUs for GPU workers)."""
        if self.num_workers is not None:
            return self.num_workers
        import ray

        resources = ray.cluster_resources()
        if self.gpus_per_worker > 0:
            return max(1, int(resources.get("GPU", 0) // self.gpus_per_worker))
        return max(1, int(resources.get("CPU", 1) // self.cpus_per_worker))


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError("--engine ray needs Ray: pip install 'mammoscreen[ray]' (with -c constraints.txt on a "
                          "CPU-only machine)") from None
    return ray


@contextlib.contextmanager
def ray_session(settings: RaySettings) -> Iterator[Any]:
    """Ray connected for the duration: to ``settings.address``, to the instance this process is already
    connected to, or to a new local instance (started here and stopped at the end)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    # The workers' output goes to Ray's log files, not into the run's progress bars.
    common = {"log_to_driver": bool(os.environ.get("MAMMOSCREEN_RAY_LOG")), "configure_logging": False}
    if settings.address:
        ray.init(address=settings.address, **common)
    else:
        # A single-machine instance listens on the loopback interface only. address="local": a new instance
        # even when another Ray runs on this machine (without it, ray.init would join the newest one).
        with _environment(RAY_WORKER_NICENESS, os.environ.get(RAY_WORKER_NICENESS, "0")):
            ray.init(address="local", num_cpus=_local_cpus(settings), include_dashboard=False,
                     _node_ip_address="127.0.0.1", **common, object_store_memory=_local_object_store())
    try:
        yield ray
    finally:
        ray.shutdown()


# Ray runs its workers at nice 15 by default, behind every other process of the machine. The workers of the
# instance a run starts for itself do that run's main work, as the local engine's process does (at the
# user's own priority), so they run at nice 0 unless RAY_worker_niceness says otherwise; a cluster keeps its own.
RAY_WORKER_NICENESS = "RAY_worker_niceness"


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``name=value`` in this process's environment (inherited by the processes started meanwhile)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _local_cpus(settings: RaySettings) -> int:
    cpus = os.cpu_count() or 1
    if settings.num_workers is not None:  # room for every worker, even on a small machine
        cpus = max(cpus, int(settings.num_workers * settings.cpus_per_worker + 0.999))
    return cpus


def _local_object_store() -> int | None:
    """Object store of a local instance: results travel through it one batch at a time, so a small one does
    (MAMMOSCREEN_RAY_OBJECT_STORE_MB; default 512 MB) - Ray's default takes 30 % of the machine's memory."""
    mb = int(os.environ.get("MAMMOSCREEN_RAY_OBJECT_STORE_MB", "512"))
    return mb * 1024 * 1024
