"""The robustness harness itself: it must see what it claims to see, or the tests built on it prove nothing."""

from __future__ import annotations

import pytest

from clirun import assert_clean_error, changed_outside, run_cli, tree_snapshot


def test_run_cli_reports_exit_status_output_and_the_childs_own_peak_memory(tmp_path):
    result = run_cli(["--version"], cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("mammoscreen ")
    assert result.peak_rss_mb is not None and 10 < result.peak_rss_mb < 2000


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_assert_clean_error_accepts_a_one_line_error_and_rejects_a_success(tmp_path):
    result = run_cli(["crop", "--images", str(tmp_path), "--exam-list", str(tmp_path / "missing.pkl"),
                      "--output-dir", str(tmp_path / "out")])
    assert_clean_error(result, "crop", mentions=["missing.pkl"])
    ok = run_cli(["--version"])
    try:
        assert_clean_error(ok, "crop")
    except AssertionError:
        pass
    else:
        raise AssertionError("a successful run was taken for a clean error")


def test_snapshots_see_new_modified_and_removed_files_outside_the_allowed_prefix(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "keep.txt").write_text("a")
    (tmp_path / "gone.txt").write_text("b")
    before = tree_snapshot(tmp_path)
    (tmp_path / "out" / "result.csv").write_text("fine")
    (tmp_path / "keep.txt").write_text("changed")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "new.txt").write_text("c")
    assert changed_outside(before, tree_snapshot(tmp_path), allowed=["out"]) == ["gone.txt", "keep.txt", "new.txt"]
