"""The fast loop's smaller Hypothesis budget never reaches CI or a plain run (docs/testing.md, "The fast loop")."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

import testutils
from testutils import examples, is_fast_loop


def test_only_a_local_run_without_the_slow_tests_is_the_fast_loop():
    assert is_fast_loop("not slow", "")
    assert is_fast_loop("not  slow and not cuda", "false")
    assert not is_fast_loop("", "")  # a plain python -m pytest
    assert not is_fast_loop("slow", "")
    assert not is_fast_loop("not slow", "true")  # CI=true: full counts even with -m "not slow"
    assert not is_fast_loop("not slow", "TRUE")
    assert not is_fast_loop("not slow", "1")


def test_example_counts_follow_the_loop(monkeypatch):
    monkeypatch.setattr(testutils, "FAST_LOOP", False)
    assert [examples(n) for n in (40, 150, 300)] == [40, 150, 300]
    monkeypatch.setattr(testutils, "FAST_LOOP", True)
    assert [examples(n) for n in (40, 150, 300)] == [10, 15, 30]


def test_this_run_uses_the_profile_of_its_loop():
    # The default profile's 100 examples outside the fast loop; the fast-loop profile's 10 inside it.
    if "HYPOTHESIS_PROFILE" in os.environ:
        pytest.skip("HYPOTHESIS_PROFILE chooses the profile of this run")
    assert settings.default.max_examples == (10 if testutils.FAST_LOOP else 100)
