"""Prediction on Ray: a pool of actors, each holding one model, fed batches of work units.

Every actor builds its predictor once, from the predictor's picklable request, and runs the engine's own
:class:`~mammoscreen.engine.work.UnitRunner` (with the local engine's prefetching loader): loading,
preprocessing, the forward pass, the finite-value check and the figures are the code the local engine
runs. The driver gets the outcomes back and writes them; nothing is written on the workers.

Faults: a batch whose actor dies (killed, out of memory, its node gone) is put back in the queue and
run by another actor; a replacement actor is started (Ray places it on whichever node has room) and is
given work only once it is up, so a cluster that lost a node finishes on the nodes it has left. A bad
image is a per-unit failure from the runner, as locally - never a lost actor.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from ...core.stages import describe_error
from ...models.factory import build_predictor, request_of
from ..executor import run_units
from ..work import Job, UnitFailure, UnitOutcome, UnitResult, UnitRunner, WorkUnit
from .session import RaySettings, import_ray

MAX_ATTEMPTS = 4  # runs of one batch whose actor died before its units are reported as failed
READY = "ready"
WAIT_STEP = 1.0  # seconds between checks that some worker is up


class RemoteError(ValueError):
    """An error raised on a worker whose own type could not travel back: its message as the driver would
    have described it (a ValueError, so :func:`describe_error` keeps the text as it is)."""


class WorkerStartError(RuntimeError):
    """The workers could not build the model (weights missing on the worker nodes, out of memory...)."""


def _portable(outcome: UnitOutcome) -> UnitOutcome:
    """An outcome whose error travels back with the same description: Python's own exceptions (and OSErrors,
    whose errno marks an I/O failure) as they are; any other type - which may not unpickle on the driver -
    as a :class:`RemoteError` with the text :func:`describe_error` gives the original."""
    if isinstance(outcome, UnitFailure):
        error = outcome.error
        if type(error).__module__ != "builtins" and not isinstance(error, OSError):
            return UnitFailure(outcome.unit, RemoteError(describe_error(error)))
    return outcome


class ModelWorker:
    """A Ray actor: one predictor and one runner for one engine run (see :class:`RayExecutor`)."""

    def __init__(self, request: Any, job: Job, threads: int):
        import ray
        import torch

        # Ray gives an actor as many threads as CPUs it asked for; float sums over another number of threads
        # round differently (GLAM's maps change in the last bits), so use the driver's number.
        torch.set_num_threads(threads)
        self.node = ray.get_runtime_context().get_node_id()
        self.error: str | None = None
        try:
            self.runner = UnitRunner(build_predictor(request), job, figures_as_bytes=True)
        except Exception as error:  # reported by ready(), so the driver stops with the reason
            self.error = describe_error(error)

    def ready(self) -> tuple[str, str | None]:
        return self.node, self.error

    def process(self, units: Sequence[WorkUnit]) -> tuple[str, list[UnitOutcome]]:
        return self.node, [_portable(o) for o in run_units(self.runner, units)]


@dataclass
class _Batch:
    units: list[WorkUnit]
    attempts: int = 0


@dataclass
class RunRecord:
    """Where one run's units ran (the engine provenance recorded in run_summary.json)."""

    workers: int = 0
    ran_on: dict[str, str] = field(default_factory=dict)  # unit name -> Ray node id
    workers_lost: int = 0  # actors that died during the run (their batches ran again elsewhere)

    def to_json(self) -> dict[str, Any]:
        return {"workers": self.workers, "workers_lost": self.workers_lost,
                "nodes": dict(sorted(Counter(self.ran_on.values()).items())), "ran_on": dict(self.ran_on)}


def _driver_threads() -> int:
    import torch

    return torch.get_num_threads()


class RayExecutor:
    """Runs the engine's work units on a pool of Ray actors (an :class:`~mammoscreen.engine.executor.Executor`).

    Needs a connected Ray (:func:`~mammoscreen.engine.ray.session.ray_session`). ``settings.num_workers``
    actors, each with ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs, spread over the nodes; each
    gets ``depth`` batches ahead so that it never waits for the driver.
    """

    name = "ray"

    def __init__(self, settings: RaySettings = RaySettings(), depth: int = 2, start_timeout: float = 600.0):
        self.settings, self.depth, self.start_timeout = settings, depth, start_timeout
        self.last_run = RunRecord()
        self.live_actors: list[Any] = []  # the actors of the run in progress

    def run(self, predictor: Any, job: Job, units: Sequence[WorkUnit]) -> Iterator[UnitOutcome]:
        self.last_run = record = RunRecord()
        self.live_actors = alive = []
        if not units:
            return
        ray = import_ray()
        request = request_of(predictor)
        threads = self.settings.threads_per_worker or _driver_threads()
        actor_class = ray.remote(ModelWorker).options(
            num_cpus=self.settings.cpus_per_worker, num_gpus=self.settings.gpus_per_worker,
            max_restarts=0, scheduling_strategy="SPREAD")
        size = max(1, job.batch_size)
        queue = deque(_Batch(list(units[i:i + size])) for i in range(0, len(units), size))
        record.workers = n_workers = min(self.settings.workers(), len(queue))
        pending: dict[Any, tuple[str, Any, _Batch | None]] = {}  # ref -> (kind, actor, batch)
        busy: Counter = Counter()  # actor -> batches in flight
        starting: list[Any] = []

        def start_actor() -> None:
            actor = actor_class.remote(request, job, threads)
            starting.append(actor)
            pending[actor.ready.remote()] = (READY, actor, None)

        def feed(actor: Any) -> None:
            while queue and busy[actor] < self.depth:
                batch = queue.popleft()
                pending[actor.process.remote(batch.units)] = ("process", actor, batch)
                busy[actor] += 1

        for _ in range(n_workers):
            start_actor()
        waited = 0.0
        try:
            while queue or any(kind != READY for kind, _, _ in pending.values()):
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_STEP)
                if not ready:  # nothing finished: only a cluster without room for any worker ends the run
                    waited = waited + WAIT_STEP if not alive else 0.0
                    if waited >= self.start_timeout:
                        raise WorkerStartError(
                            f"no Ray worker could start within {self.start_timeout:.0f} s: the cluster has no node "
                            f"with {self.settings.cpus_per_worker:g} free CPU(s) and "
                            f"{self.settings.gpus_per_worker:g} GPU(s) (see 'ray status')")
                    continue
                waited = 0.0
                kind, actor, batch = pending.pop(ready[0])
                try:
                    node, result = ray.get(ready[0])
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                        ray.exceptions.ObjectLostError) as error:
                    self._lost(actor, alive, starting, busy, record)
                    if batch is not None:
                        batch.attempts += 1
                        if batch.attempts >= MAX_ATTEMPTS:
                            for unit in batch.units:
                                yield UnitFailure(unit, RuntimeError(
                                    f"its Ray worker died {batch.attempts} times while running it (last: "
                                    f"{type(error).__name__}); re-run to retry it"))
                        else:
                            queue.appendleft(batch)
                    if record.workers_lost > MAX_ATTEMPTS * n_workers:
                        raise WorkerStartError(f"Ray workers keep dying ({record.workers_lost} lost): "
                                               f"{describe_error(error)}") from None
                    if queue and len(alive) + len(starting) < n_workers:
                        start_actor()  # a replacement, placed by Ray wherever there is room
                    for live in alive:  # the batch put back goes to whichever live actor has room
                        feed(live)
                    continue
                if kind == READY:
                    if result is not None:
                        raise WorkerStartError(f"a Ray worker on node {node} could not build "
                                               f"{request.model}: {result}")
                    starting.remove(actor)
                    alive.append(actor)
                    feed(actor)
                    continue
                busy[actor] -= 1
                for outcome in result:
                    if isinstance(outcome, UnitResult):
                        record.ran_on[outcome.unit.name] = node
                    yield outcome
                feed(actor)
        finally:
            for actor in alive + starting:  # also cancels workers still waiting for room
                ray.kill(actor)
            alive.clear()

    @staticmethod
    def _lost(actor: Any, alive: list[Any], starting: list[Any], busy: Counter, record: RunRecord) -> None:
        if actor in alive:
            alive.remove(actor)
            record.workers_lost += 1
        elif actor in starting:
            starting.remove(actor)
        busy.pop(actor, None)

    def provenance(self) -> dict[str, Any]:
        return {"engine": self.name, **self.last_run.to_json()}
