"""Loading ahead across calls: a worker keeps decoding while one call ends and the next begins.

A Ray model worker gets its units in calls (a few forward batches each). Loading inside each call, as the
local engine's :func:`~mammoscreen.engine.executor.prefetch` does for a whole run, would start every call
with an idle model: its first unit's decoding and preprocessing is not overlapped with any forward pass
(on full-size GMIC with two units per call, about 15 % of the run). So the worker's units are loaded by one
:class:`CallLoader` for the life of the actor: the driver announces each call (numbered per worker, in the
order it sends them) as it sends it, in a concurrency group of its own, and the loader works through the
calls in that order, at most ``ahead`` units ahead of the one being predicted - the same bound as locally.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence


FREE, LOADER, CONSUMER = 0, 1, 2  # who loads a unit: nobody yet, a loader thread, the consumer (or nobody: dropped)


class _Item:
    __slots__ = ("unit", "future", "owner")

    def __init__(self, unit: Any):
        self.unit, self.future, self.owner = unit, Future(), FREE


class CallLoader:
    """Loads the units of numbered calls, lowest number first, ``ahead`` units at most before the consumer.

    ``announce(call, units)`` queues a call's units (again is a no-op); ``loaded(call, units)`` announces
    them if needed and yields (unit, future of ``load(unit)``) in order. A unit the loader has not started
    when the consumer reaches it is loaded by the consumer itself, so nothing ever waits on a call that is
    not its own, whatever order the announcements and calls arrive in. A call is consumed once; when its
    consumer stops early, its units not yet started are dropped.
    """

    def __init__(self, load: Callable[[Any], Any], ahead: int, threads: int = 1):
        if ahead < 1:
            raise ValueError(f"ahead must be at least 1, got {ahead}")
        self._load, self._ahead = load, ahead
        self._cond = threading.Condition()
        self._queued: dict[int, list[_Item]] = {}  # announced, not yet gone through by the dispatcher
        self._calls: dict[int, list[_Item]] = {}  # announced, not yet consumed
        self._seen: set[int] = set()
        self._in_flight = 0  # units the loader threads claimed that are not yet consumed or dropped
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mammoscreen-loader")
        self._dispatcher = threading.Thread(target=self._dispatch, name="mammoscreen-call-loader", daemon=True)
        self._dispatcher.start()

    def announce(self, call: int, units: Sequence[Any]) -> None:
        with self._cond:
            if call in self._seen or self._closed:
                return
            self._seen.add(call)
            self._queued[call] = self._calls[call] = [_Item(unit) for unit in units]
            self._cond.notify_all()

    def loaded(self, call: int, units: Sequence[Any]) -> Iterator[tuple[Any, Future]]:
        self.announce(call, units)
        with self._cond:
            items = self._calls.pop(call, None)
        if items is None:
            raise RuntimeError(f"call {call} was consumed already")
        done = 0  # items consumed (the one being yielded is not, until the consumer asks for the next)
        try:
            for item in items:
                with self._cond:
                    mine = item.owner == FREE
                    if mine:
                        item.owner = CONSUMER
                if mine:  # not started by the loader: load it here, now
                    self._fill(item)
                yield item.unit, item.future
                if not mine:
                    self._release(1)
                done += 1
        finally:
            with self._cond:
                for item in items[done:]:
                    if item.owner == LOADER:
                        self._in_flight -= 1  # its result is dropped
                    item.owner = CONSUMER  # the loader skips the rest
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _release(self, n: int) -> None:
        with self._cond:
            self._in_flight -= n
            self._cond.notify_all()

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._queued and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                items = self._queued.pop(min(self._queued))
            for item in items:
                with self._cond:
                    while self._in_flight >= self._ahead and item.owner == FREE and not self._closed:
                        self._cond.wait()
                    if self._closed or item.owner != FREE:
                        continue  # the consumer took it, or its call ended
                    item.owner = LOADER
                    self._in_flight += 1
                self._pool.submit(self._fill, item)

    def _fill(self, item: _Item) -> None:
        try:
            item.future.set_result(self._load(item.unit))
        except BaseException as error:  # the consumer reports it as the unit's failure
            item.future.set_exception(error)
