"""Which engine runs a command's work: the local one (this process and its worker processes) or Ray.

:func:`open_engine` gives an :class:`Engine` for the duration of a run: the prediction executor to put in
``PredictOptions.executor``, the pool that per-image stages (crop, centres, DICOM conversion) hand to
``map_images``, and afterwards the engine's provenance (which nodes ran what). The local engine is
``executor=None, pool=None``: exactly what runs without an engine.
"""

from __future__ import annotations

import contextlib
import concurrent.futures
from dataclasses import dataclass, field
from typing import Any, Iterator

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineChoice:
    """'local', or 'ray' with its settings (``mammoscreen.engine.ray.RaySettings``)."""

    name: str = "local"
    ray: Any = None

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ValueError(f"unknown engine {self.name!r}; choose one of {', '.join(ENGINES)}")


@dataclass
class Engine:
    """An open engine. ``executor``: the prediction executor (None: the local one); ``pool``: the
    ``concurrent.futures`` executor of per-image stages (None: map_images' own process pool);
    ``workers``: their concurrency (None: the command's ``--workers``)."""

    name: str = "local"
    executor: Any = None
    pool: concurrent.futures.Executor | None = None
    workers: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)  # stage -> where its work ran

    def stage_workers(self, default: int) -> int:
        return self.workers if self.workers is not None else default

    def note_stage(self, stage: str) -> None:
        """Record where ``stage``'s work ran (after it finished)."""
        if self.executor is not None and hasattr(self.executor, "provenance"):
            record = self.executor.provenance()
            if record.get("ran_on"):
                self.stages[stage] = record
                return
        if self.pool is not None and getattr(self.pool, "nodes", None):
            self.stages[stage] = {"engine": self.name, "nodes": dict(sorted(self.pool.nodes.items()))}
            self.pool.nodes.clear()

    def provenance(self) -> dict[str, Any]:
        """What run_summary.json records about the engine (``run.engine``)."""
        out: dict[str, Any] = {"name": self.name, **self.settings}
        if self.stages:
            out["stages"] = self.stages
        return out


LOCAL = Engine()


@contextlib.contextmanager
def open_engine(choice: EngineChoice | None = None) -> Iterator[Engine]:
    """The engine ``choice`` names, ready for a run (a Ray session is connected, or started and then stopped)."""
    if choice is None or choice.name == "local":
        yield Engine()
        return
    from .ray import RayExecutor, RaySettings, RayTaskPool, ray_session

    settings = choice.ray or RaySettings()
    with ray_session(settings) as ray:
        workers = settings.workers()
        yield Engine("ray", RayExecutor(settings), RayTaskPool(), workers,
                     {"address": settings.address, "num_workers": workers,
                      "gpus_per_worker": settings.gpus_per_worker,
                      "cluster_nodes": sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))})
