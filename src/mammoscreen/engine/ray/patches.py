"""Sub-unit fan-out: the patch batches of one unit (a DMV-CNN exam's heatmaps) spread over every model worker.

A unit runs on one actor, but the DMV-CNN's heatmaps - the patch classifier over every 256x256 patch of
every image, most of its time - are many independent batches. A worker whose predictor can share them
(``share_patches``, see :mod:`mammoscreen.models.nyu_model.predictor`) gets a :class:`WorkerPatchPool`:
its batches go to the ``patches`` method of all live workers (itself included), at most ``depth`` in
flight on each, and come back in order. Each batch is the very tensor the local engine builds and goes
through the same network with the same thread count, so the heatmaps are bit-identical; a batch whose
worker died is classified here. The workers serve these calls in their own concurrency group, beside the
unit they run (which waits for them), so no worker idles while another's exam has patches left.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .session import import_ray

PATCH_GROUP = "patches"  # the actors' concurrency group serving patch batches
DEPTH = 2  # patch batches in flight per worker: one computing, one waiting in its queue


class WorkerPatchPool:
    """A :class:`~mammoscreen.models.nyu_model.patch_heatmaps.BatchPool` over the live model workers.

    ``peers`` (worker index -> actor handle) is replaced by the driver whenever workers start or die; ``record``
    collects, per image label, the indices of the workers that classified its patches (engine provenance).
    """

    def __init__(self, index: int, depth: int = DEPTH):
        self.index, self.depth = index, depth
        self.peers: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._record: dict[str, set[int]] = defaultdict(set)

    def set_peers(self, peers: dict[int, Any]) -> None:
        self.peers = dict(peers)

    def drain(self) -> dict[str, list[int]]:
        """The record since the last drain: {image label: sorted worker indices}."""
        with self._lock:
            record, self._record = self._record, defaultdict(set)
        return {label: sorted(workers) for label, workers in record.items()}

    def _note(self, labels: Sequence[str], worker: int) -> None:
        with self._lock:
            for label in labels:
                self._record[label].add(worker)

    def map(self, classify: Callable[[np.ndarray], np.ndarray], batches: Iterator[np.ndarray],
            labels: Sequence[tuple[str, ...]]) -> list[np.ndarray]:
        ray = import_ray()
        results: list[np.ndarray | None] = []
        pending: dict[Any, tuple[int, int, np.ndarray]] = {}  # ref -> (batch number, worker, batch)
        busy: dict[int, int] = defaultdict(int)
        lost: set[int] = set()

        def collect(ref: Any) -> None:
            number, worker, batch = pending.pop(ref)
            busy[worker] -= 1
            try:
                results[number] = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError):
                lost.add(worker)  # that worker is gone: classify the batch here
                worker = self.index
                results[number] = classify(batch)
            self._note(labels[number], worker)

        for number, batch in enumerate(batches):
            results.append(None)
            while True:
                peers = {i: a for i, a in self.peers.items() if i not in lost}
                alone = set(peers) <= {self.index}  # no other live worker (yet): no round trip through Ray
                free = [i for i in sorted(peers) if busy[i] < self.depth]
                if alone or free:
                    break
                done, _ = ray.wait(list(pending), num_returns=1)
                collect(done[0])
            if alone:
                results[number] = classify(batch)
                self._note(labels[number], self.index)
                continue
            worker = min(free, key=lambda i: (busy[i], i))
            pending[peers[worker].patches.options(concurrency_group=PATCH_GROUP).remote(batch)] = \
                (number, worker, batch)
            busy[worker] += 1
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            collect(done[0])
        return results  # type: ignore[return-value]
