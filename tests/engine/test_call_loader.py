"""The Ray workers' loader (engine/ray/loader.py): units of numbered calls loaded ahead across calls, in call
order, never more than ``ahead`` before the consumer, and never a wait on a call that is not the consumer's own.
Plain threads, no Ray: every wait is bounded, so a deadlock fails the test instead of hanging it."""

from __future__ import annotations

import threading

import pytest

from mammoscreen.engine.ray.loader import CallLoader

WAIT = 20.0  # seconds: far above any real wait here; reached only when the loader is stuck


class Recorder:
    """load(unit) = unit * 10, recording which thread loaded which unit and how far ahead the loader got."""

    def __init__(self):
        self.lock = threading.Lock()
        self.loaded: list[int] = []
        self.threads: dict[int, str] = {}
        self.consumed = 0
        self.most_ahead = 0
        self.events: dict[int, threading.Event] = {}

    def event(self, unit: int) -> threading.Event:
        with self.lock:
            return self.events.setdefault(unit, threading.Event())

    def load(self, unit: int) -> int:
        if unit < 0:
            raise ValueError(f"bad unit {unit}")
        with self.lock:
            self.loaded.append(unit)
            self.threads[unit] = threading.current_thread().name
            self.most_ahead = max(self.most_ahead, len(self.loaded) - self.consumed)
        self.event(unit).set()
        return unit * 10

    def take(self, loader: CallLoader, call: int, units: list[int]) -> list[int]:
        values, order = [], []
        for unit, future in loader.loaded(call, units):
            order.append(unit)
            values.append(future.result(timeout=WAIT))
            with self.lock:
                self.consumed += 1
        assert order == units  # yielded in the call's order, whoever loaded them
        return values


def in_thread(function, *args):
    """Run ``function`` in a thread and return its result; fail (not hang) if it does not end in time."""
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(value=function(*args)), daemon=True)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), f"{function.__name__} did not finish within {WAIT} s (deadlock)"
    return out["value"]


def test_calls_are_loaded_in_order_with_every_value():
    recorder = Recorder()
    loader = CallLoader(recorder.load, ahead=3)
    calls = {0: [1, 2, 3], 1: [4, 5], 2: [6, 7, 8, 9]}
    for call, units in calls.items():
        loader.announce(call, units)
    for call, units in calls.items():
        assert in_thread(recorder.take, loader, call, units) == [u * 10 for u in units]
    assert recorder.loaded == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert recorder.most_ahead <= 3
    loader.close()


def test_the_next_call_is_loaded_while_the_current_one_is_consumed():
    """The reason for the loader: once call 0 is taken, call 1's first units load before call 1 starts."""
    recorder = Recorder()
    loader = CallLoader(recorder.load, ahead=2)
    loader.announce(0, [1])
    loader.announce(1, [2, 3, 4])
    assert in_thread(recorder.take, loader, 0, [1]) == [10]
    assert recorder.event(2).wait(WAIT) and recorder.event(3).wait(WAIT)  # ahead, before call 1 is consumed
    assert recorder.threads[2].startswith("mammoscreen-loader")
    assert not recorder.event(4).is_set()  # ...but no more than `ahead` units
    assert in_thread(recorder.take, loader, 1, [2, 3, 4]) == [20, 30, 40]
    loader.close()


def test_a_call_announced_late_never_waits_behind_later_calls():
    """Call 1 (more units than `ahead`) is announced first and fills the loader; call 0 then arrives without an
    announcement of its own: its consumer loads its units itself instead of waiting for call 1 to be consumed."""
    recorder = Recorder()
    loader = CallLoader(recorder.load, ahead=2)
    loader.announce(1, [5, 6, 7, 8])
    assert recorder.event(6).wait(WAIT)
    assert in_thread(recorder.take, loader, 0, [1, 2]) == [10, 20]
    assert recorder.threads[1] == recorder.threads[2] != recorder.threads[5]  # loaded by their consumer
    assert in_thread(recorder.take, loader, 1, [5, 6, 7, 8]) == [50, 60, 70, 80]
    loader.close()


def test_a_consumer_that_stops_early_frees_its_places():
    recorder = Recorder()
    loader = CallLoader(recorder.load, ahead=1)
    loader.announce(0, [1, 2, 3])
    taken = loader.loaded(0, [1, 2, 3])
    unit, future = next(taken)
    assert (unit, future.result(timeout=WAIT)) == (1, 10)
    taken.close()  # the call ends here: units 2 and 3 are dropped, the loader's place is free again
    loader.announce(1, [4, 5])
    assert recorder.event(4).wait(WAIT)
    assert recorder.threads[4].startswith("mammoscreen-loader")  # the loader, not a consumer, loaded it
    assert in_thread(recorder.take, loader, 1, [4, 5]) == [40, 50]
    assert 3 not in recorder.loaded
    loader.close()


def test_a_unit_that_fails_to_load_fails_alone():
    recorder = Recorder()
    loader = CallLoader(recorder.load, ahead=2)
    results = {}
    for unit, future in loader.loaded(0, [1, -2, 3]):
        error = future.exception(timeout=WAIT)
        results[unit] = str(error) if error else future.result()
    assert results == {1: 10, -2: "bad unit -2", 3: 30}
    loader.close()


def test_a_call_is_consumed_once_and_announcing_twice_changes_nothing():
    recorder = Recorder()
    loader = CallLoader(recorder.load, ahead=2)
    loader.announce(0, [1, 2])
    loader.announce(0, [1, 2])
    assert in_thread(recorder.take, loader, 0, [1, 2]) == [10, 20]
    assert sorted(recorder.loaded) == [1, 2]
    with pytest.raises(RuntimeError, match="call 0 was consumed already"):
        next(loader.loaded(0, [1, 2]))
    with pytest.raises(ValueError, match="ahead must be at least 1"):
        CallLoader(recorder.load, ahead=0)
    loader.close()
