"""Prediction on Ray: a pool of actors, each holding one model, fed batches of work units.

Every actor builds its predictor once, from the predictor's picklable request, and runs the engine's own
:class:`~mammoscreen.engine.work.UnitRunner` (with the local engine's prefetching loader): loading,
preprocessing, the forward pass, the finite-value check and the figures are the code the local engine
runs. The driver gets the outcomes back and writes them; nothing is written on the workers.

Sub-unit fan-out: a predictor that can share the batches inside one unit (the DMV-CNN's heatmap patches)
hands them to a :class:`~mammoscreen.engine.ray.patches.WorkerPatchPool`, which spreads them over all live
workers; where they ran is recorded per image.

Faults: a batch whose actor dies (killed, out of memory, its node gone) is put back in the queue and
run by another actor; a replacement actor is started (Ray places it on whichever node has room) and is
given work only once it is up, so a cluster that lost a node finishes on the nodes it has left. A bad
image is a per-unit failure from the runner, as locally - never a lost actor.
"""

from __future__ import annotations

import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from ...core.stages import describe_error
from ...models.factory import build_predictor, request_of
from ..executor import loading_plan, run_loaded
from ..work import Job, UnitFailure, UnitOutcome, UnitResult, UnitRunner, WorkUnit
from .loader import CallLoader
from .patches import PATCH_GROUP, WorkerPatchPool
from .session import RaySettings, import_ray

LOADER_GROUP = "loader"  # the actors' concurrency group taking call announcements (engine/ray/loader.py)
MAX_ATTEMPTS = 4  # runs of one batch whose actor died before its units are reported as failed
READY = "ready"
WAIT_STEP = 1.0  # seconds between checks that some worker is up
GATHER_S = 60.0  # seconds a run of shared-patch units waits, after its first worker is up, for the others


class RemoteError(ValueError):
    """An error raised on a worker whose own type could not travel back: its message as the driver would
    have described it (a ValueError, so :func:`describe_error` keeps the text as it is)."""


class WorkerStartError(RuntimeError):
    """The workers could not build the model (weights missing on the worker nodes, out of memory...)."""


def _reason(error: BaseException) -> str:
    """One line for a Ray error, whose text is a chain of tracebacks: its root cause (the last "XError: ..."
    line), or its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception): ", line)]
    text = causes[-1] if causes else (lines[0] if lines else type(error).__name__)
    return text if len(text) <= 400 else text[:397] + "..."


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
    """A Ray actor: one predictor and one runner for one engine run (see :class:`RayExecutor`).

    Units run one at a time, loaded by one :class:`CallLoader` for the actor's life. Workers of a predictor
    that shares patch batches are threaded actors: the driver tells them of each call as it sends it
    (``announce``, in the ``loader`` group), so loading runs ahead across calls, and patch batches that peers
    hand over run beside the unit in the ``patches`` group (see :mod:`mammoscreen.engine.ray.patches`).
    Other workers are plain actors (faster forward passes): each call's loading starts with the call."""

    def __init__(self, request: Any, job: Job, threads: int, index: int = 0):
        import ray
        import torch

        # Ray gives an actor as many threads as CPUs it asked for; float sums over another number of threads
        # round differently (GLAM's maps change in the last bits), so use the driver's number.
        self.threads = threads
        torch.set_num_threads(threads)
        self.node = ray.get_runtime_context().get_node_id()
        self.error: str | None = None
        self.patch_pool: WorkerPatchPool | None = None
        self.classify: Any = None
        self.loader: CallLoader | None = None
        try:
            predictor = build_predictor(request)
            self.runner = UnitRunner(predictor, job, figures_as_bytes=True)
            ahead, loader_threads = loading_plan(self.runner)
            self.loader = CallLoader(self.runner.load, ahead, loader_threads)
            share = getattr(predictor, "share_patches", None)
            if callable(share):
                pool = WorkerPatchPool(index)
                self.classify = share(pool)
                self.patch_pool = pool if self.classify is not None else None
        except Exception as error:  # reported by ready(), so the driver stops with the reason
            self.error = describe_error(error)

    def ready(self) -> tuple[str, str | None]:
        return self.node, self.error

    def set_peers(self, peers: dict[int, Any]) -> None:
        """The live workers (index -> handle) this worker's patch batches may go to."""
        if self.patch_pool is not None:
            self.patch_pool.set_peers(peers)

    def patches(self, batch: Any) -> Any:
        """Classify one patch batch handed over by a peer (or by this worker's own pool)."""
        import torch

        torch.set_num_threads(self.threads)  # this group's thread, too, computes with the driver's thread count
        return self.classify(batch)

    def announce(self, call: int, units: Sequence[WorkUnit]) -> None:
        """Call number ``call`` (this worker's calls are numbered from 0 in the order sent) will bring ``units``."""
        if self.loader is not None:
            self.loader.announce(call, units)

    def process(self, call: int, units: Sequence[WorkUnit], peers: dict[int, Any] | None = None
                ) -> tuple[str, list[UnitOutcome], dict[str, list[int]]]:
        """(node, outcomes, {image: indices of the workers that classified its patches})."""
        import torch

        assert self.loader is not None  # the driver sends no units to a worker whose ready() reported an error
        torch.set_num_threads(self.threads)
        if peers is not None:
            self.set_peers(peers)
        outcomes = [_portable(o) for o in run_loaded(self.runner, self.loader.loaded(call, units))]
        return self.node, outcomes, self.patch_pool.drain() if self.patch_pool is not None else {}


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
    worker_nodes: dict[int, str] = field(default_factory=dict)  # worker index -> Ray node id
    patches_ran_on: dict[str, list[int]] = field(default_factory=dict)  # image -> workers that classified patches
    worker_start_s: float | None = None  # seconds from the run's start until the first worker was up

    def note_patches(self, record: dict[str, list[int]]) -> None:
        for image, workers in record.items():
            self.patches_ran_on[image] = sorted(set(self.patches_ran_on.get(image, [])) | set(workers))

    def to_json(self) -> dict[str, Any]:
        out = {"workers": self.workers, "workers_lost": self.workers_lost, "worker_start_s": self.worker_start_s,
               "nodes": dict(sorted(Counter(self.ran_on.values()).items())), "ran_on": dict(self.ran_on)}
        if self.patches_ran_on:  # sub-unit fan-out (DMV-CNN heatmap patches): per image, workers and their nodes
            out["worker_nodes"] = {str(i): node for i, node in sorted(self.worker_nodes.items())}
            out["patches_ran_on"] = {image: {"workers": workers,
                                             "nodes": sorted({self.worker_nodes[w] for w in workers
                                                              if w in self.worker_nodes})}
                                     for image, workers in sorted(self.patches_ran_on.items())}
        return out


def _driver_threads() -> int:
    import torch

    return torch.get_num_threads()


CALLS_PER_WORKER = 4  # at least this many calls per worker and depth: the tail stays short, work balances
MAX_BATCHES_PER_CALL = 8  # forward batches per call at most: a lost worker's call is not much work to redo


def units_per_call(n_units: int, batch_size: int, workers: int, depth: int) -> int:
    """Units per actor call: whole forward batches, as many as keep every worker ``CALLS_PER_WORKER * depth``
    calls busy (at most ``MAX_BATCHES_PER_CALL``). A few units per worker (DMV-CNN exams) go one batch per call."""
    batches = -(-n_units // batch_size)
    per_call = batches // (max(1, workers) * max(1, depth) * CALLS_PER_WORKER)
    return batch_size * max(1, min(MAX_BATCHES_PER_CALL, per_call))


class RayExecutor:
    """Runs the engine's work units on a pool of Ray actors (an :class:`~mammoscreen.engine.executor.Executor`).

    Needs a connected Ray (:func:`~mammoscreen.engine.ray.session.ray_session`). ``settings.num_workers``
    actors, each with ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs, spread over the nodes; each
    gets ``depth`` calls ahead so that it never waits for the driver. A call carries several forward batches
    (:func:`units_per_call`): inside it the actor decodes the next units while the model runs, as the local
    engine does, and the round trip to the driver is paid once per call, not per image.
    """

    name = "ray"

    def __init__(self, settings: RaySettings = RaySettings(), depth: int = 2, start_timeout: float = 600.0,
                 gather_s: float = GATHER_S):
        self.settings, self.depth, self.start_timeout, self.gather_s = settings, depth, start_timeout, gather_s
        self.last_run = RunRecord()
        self.live_actors: list[Any] = []  # the actors of the run in progress

    def run(self, predictor: Any, job: Job, units: Sequence[WorkUnit]) -> Iterator[UnitOutcome]:
        self.last_run = record = RunRecord()
        self.live_actors = alive = []
        if not units:
            return
        started = time.perf_counter()
        ray = import_ray()
        request = request_of(predictor)
        threads = self.settings.threads_per_worker or _driver_threads()
        # Units whose inner batches are shared (DMV-CNN heatmap patches) need the workers to take patch batches
        # and call announcements beside the unit they run: concurrency groups (a threaded actor). Other models get
        # a plain actor: measured 10-15 % faster on full-size GMIC (the forward on the actor's main thread), which
        # outweighs loading ahead across calls (each call then loads its own units, several batches per call).
        shares = bool(getattr(predictor, "shares_patches", False))
        remote = ray.remote(concurrency_groups={PATCH_GROUP: 1, LOADER_GROUP: 1}) if shares else ray.remote
        # Ray starts a worker with OMP_NUM_THREADS=1 (one CPU asked): OpenMP then runs the threads that
        # torch.set_num_threads adds less well - full-size GMIC measured 10 % slower - so the worker starts with
        # its real thread count.
        actor_class = remote(ModelWorker).options(
            num_cpus=self.settings.cpus_per_worker, num_gpus=self.settings.gpus_per_worker,
            max_restarts=0, scheduling_strategy="SPREAD", runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads)}})
        workers = self.settings.workers()
        size = units_per_call(len(units), max(1, job.batch_size), workers, self.depth)
        queue = deque(_Batch(list(units[i:i + size])) for i in range(0, len(units), size))
        # Units whose inner batches are shared keep every worker busy even when there are fewer units than
        # workers (one exam): start them all. Otherwise no more workers than calls.
        record.workers = n_workers = workers if shares else min(workers, len(queue))
        pending: dict[Any, tuple[str, Any, _Batch | None]] = {}  # ref -> (kind, actor, batch)
        busy: Counter = Counter()  # actor -> batches in flight
        calls: Counter = Counter()  # actor -> calls sent (each call's number, for its loader)
        start_failures = 0  # workers in a row that died before they were up
        starting: list[Any] = []
        index: dict[Any, int] = {}  # actor -> its worker index (replacements get new ones)
        # Shared-patch units are few (often fewer than workers) and each is handed out once: given to the first
        # worker up, one small exam could be done before the others start and share none of its patches. So
        # they wait until every worker is up, or gather_s after the first one (a node without room for a
        # worker does not hold the run up longer; late workers still join the patches of the unit running).
        gathering = shares and n_workers > 1
        gather_deadline: float | None = None

        def start_actor() -> None:
            actor = actor_class.remote(request, job, threads, len(index))
            index[actor] = len(index)
            starting.append(actor)
            pending[actor.ready.remote()] = (READY, actor, None)

        def peers() -> dict[int, Any]:
            return {index[a]: a for a in alive}

        def tell_peers() -> None:  # workers already running a unit learn of a new or lost peer at once
            for actor in alive if shares else ():
                actor.set_peers.options(concurrency_group=PATCH_GROUP).remote(peers())

        def feed(actor: Any) -> None:
            if gathering:
                return
            while queue and busy[actor] < self.depth:
                batch = queue.popleft()
                call = calls[actor]
                calls[actor] += 1
                if shares:
                    actor.announce.options(concurrency_group=LOADER_GROUP).remote(call, batch.units)
                pending[actor.process.remote(call, batch.units, peers())] = ("process", actor, batch)
                busy[actor] += 1

        def stop_gathering() -> None:
            nonlocal gathering
            gathering = False
            for live in alive:
                feed(live)

        for _ in range(n_workers):
            start_actor()
        waited = 0.0
        try:
            while queue or any(kind != READY for kind, _, _ in pending.values()):
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_STEP)
                if not ready:  # nothing finished: only a cluster without room for any worker ends the run
                    if gathering and gather_deadline is not None and time.perf_counter() >= gather_deadline:
                        stop_gathering()  # start with the workers that are up
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
                    got = ray.get(ready[0])
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                        ray.exceptions.ObjectLostError) as error:
                    self._lost(actor, alive, starting, busy, record)
                    if batch is None:  # it died starting: Python, torch, mammoscreen or the request failed there
                        start_failures += 1
                        if start_failures >= MAX_ATTEMPTS:
                            raise WorkerStartError(
                                f"Ray workers could not start ({start_failures} attempts): {_reason(error)}; every "
                                "node needs the driver's mammoscreen version and dependencies (docs/scale-out.md)"
                            ) from None
                    else:
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
                                               f"{_reason(error)}") from None
                    tell_peers()
                    if queue and len(alive) + len(starting) < n_workers:
                        start_actor()  # a replacement, placed by Ray wherever there is room
                    for live in alive:  # the batch put back goes to whichever live actor has room
                        feed(live)
                    continue
                node = got[0]
                if kind == READY:
                    if got[1] is not None:
                        raise WorkerStartError(f"a Ray worker on node {node} could not build "
                                               f"{request.model}: {got[1]}")
                    starting.remove(actor)
                    alive.append(actor)
                    start_failures = 0  # counted in a row: a node lost while its worker started is no reason to stop
                    record.worker_nodes[index[actor]] = node
                    if record.worker_start_s is None:
                        record.worker_start_s = round(time.perf_counter() - started, 3)
                    tell_peers()
                    if gathering:
                        if gather_deadline is None:
                            gather_deadline = time.perf_counter() + self.gather_s
                        if len(alive) >= n_workers or time.perf_counter() >= gather_deadline:
                            stop_gathering()
                    feed(actor)
                    continue
                busy[actor] -= 1
                _, outcomes, patches = got
                record.note_patches(patches)
                for outcome in outcomes:
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
