"""Names are names: validation, joins that cannot leave their directory, output directories checked first."""

from __future__ import annotations

import os

import pytest

from mammoscreen.core.paths import (MAX_NAME_BYTES, OutputLocationError, UnsafePathError, check_name,
                                    ensure_output_dir, inside_directory, name_path, name_problem, output_path)


@pytest.mark.parametrize("name", ["0_L-CC", "patient 12.L CC", "é_名字", "..hidden", "a..b", "x" * MAX_NAME_BYTES])
def test_plain_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name, reason", [
    ("../x", "separator"), ("/etc/passwd", "separator"), ("a/b", "separator"), ("a\\b", "separator"),
    ("..", "directory"), (".", "directory"), ("", "empty"), ("a\x00b", "control"), ("a\nb", "control"),
    ("x" * (MAX_NAME_BYTES + 1), "bytes long"), ("é" * (MAX_NAME_BYTES // 2 + 1), "bytes long"),
    (3, "string"), (None, "string"), ("\udc80", "Unicode"),
])
def test_names_that_are_paths_or_worse(name, reason):
    assert reason in name_problem(name)
    with pytest.raises(UnsafePathError, match=reason):
        check_name(name, "image name")


def test_joins_stay_in_their_directory(tmp_path):
    assert name_path(tmp_path, "a", ".png") == tmp_path / "a.png"
    with pytest.raises(UnsafePathError):
        name_path(tmp_path, "../a", ".png")
    assert output_path(tmp_path, "maps", "x.npz") == tmp_path / "maps" / "x.npz"
    with pytest.raises(UnsafePathError):
        output_path(tmp_path, "maps/../../x.npz")


def test_symbolic_links_out_of_the_output_directory_are_refused(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "maps").symlink_to(elsewhere, target_is_directory=True)  # planted in a shared output directory
    with pytest.raises(UnsafePathError, match="leads outside the output directory"):
        output_path(out, "maps", "x.npz")
    (out / "figure.png").symlink_to(elsewhere / "victim.png")
    with pytest.raises(UnsafePathError, match="leads outside"):
        output_path(out, "figure.png")
    # A link that stays inside is fine, and so is an output directory that is itself a link.
    (out / "inner").mkdir()
    (out / "alias").symlink_to(out / "inner", target_is_directory=True)
    assert output_path(out, "alias", "x.npz") == out / "alias" / "x.npz"
    link_to_out = tmp_path / "link_to_out"
    link_to_out.symlink_to(out, target_is_directory=True)
    assert output_path(link_to_out, "x.png") == link_to_out / "x.png"
    assert inside_directory(out / "alias" / "x", out) and not inside_directory(out / "maps" / "x", out)


def test_output_directories_are_checked_before_work(tmp_path):
    assert ensure_output_dir(tmp_path / "new" / "deeper").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputLocationError, match="is a file, not a directory"):
        ensure_output_dir(tmp_path / "file")
    with pytest.raises(OutputLocationError, match="parent of it is a file"):
        ensure_output_dir(tmp_path / "file" / "sub")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only directories")
def test_a_read_only_output_directory_is_reported(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o555)
    try:
        with pytest.raises(OutputLocationError, match="not writable"):
            ensure_output_dir(target)
    finally:
        target.chmod(0o755)
