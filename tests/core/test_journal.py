"""Journals: what a re-run may reuse, checked against the content of each item's files."""

from __future__ import annotations

import json
import os
import warnings

import pytest

from mammoscreen.core.journal import MISSING, Journal, JournalWarning, file_state, params_digest


def test_file_state_hashes_once_and_again_only_when_the_file_changed(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    path.write_bytes(b"first")
    state = file_state(path)
    assert state["stat"][0] == 5 and len(state["sha256"]) == 64
    calls = []
    import mammoscreen.core.journal as journal_module

    real = journal_module.sha256_file
    monkeypatch.setattr(journal_module, "sha256_file", lambda p: calls.append(p) or real(p))
    assert file_state(path, state) is state and not calls  # unchanged: one stat, no hash

    # Same size and modification time, other content (e.g. a copy that kept the timestamp): the change
    # time and inode give it away and the content is hashed again.
    stat = path.stat()
    replacement = tmp_path / "b.png"
    replacement.write_bytes(b"other")
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, path)
    changed = file_state(path, state)
    assert calls and changed["sha256"] != state["sha256"]
    assert file_state(tmp_path / "missing.png") is None


def test_params_digest_ignores_key_order_and_tuple_vs_list():
    assert params_digest({"a": (1, 2), "b": {"x": 1, "y": 2}}) == params_digest({"b": {"y": 2, "x": 1}, "a": [1, 2]})
    assert params_digest({"a": [1, 2]}) != params_digest({"a": [2, 1]})


def _item_journal(tmp_path, fingerprint=None):
    return Journal(tmp_path / "out" / ".journal.jsonl", fingerprint=fingerprint or {"stage": "test"})


def test_a_result_is_reused_only_while_its_params_inputs_and_outputs_are_unchanged(tmp_path):
    source, output = tmp_path / "in.png", tmp_path / "out" / "o.png"
    source.write_bytes(b"input")
    output.parent.mkdir()
    output.write_bytes(b"output")
    journal = _item_journal(tmp_path)
    journal.record_item("x", {"score": 1.0}, {"view": "L-CC"}, [file_state(source)], [output])

    reopened = _item_journal(tmp_path)
    assert reopened.reusable("x", {"view": "L-CC"}, [source], [output]) == {"score": 1.0}
    assert reopened.reusable("x", {"view": "R-CC"}, [source], [output]) is MISSING  # other parameters
    assert reopened.reusable("y", {"view": "L-CC"}, [source], [output]) is MISSING  # never recorded
    assert reopened.reusable("x", {"view": "L-CC"}, [source], [output, tmp_path / "out" / "new.npz"]) is MISSING

    output.write_bytes(b"edited")  # an output changed behind the journal's back
    assert _item_journal(tmp_path).reusable("x", {"view": "L-CC"}, [source], [output]) is MISSING
    output.write_bytes(b"output")  # ... and restored: the content is what counts
    assert _item_journal(tmp_path).reusable("x", {"view": "L-CC"}, [source], [output]) == {"score": 1.0}
    source.write_bytes(b"new input")
    assert _item_journal(tmp_path).reusable("x", {"view": "L-CC"}, [source], [output]) is MISSING
    source.unlink()
    assert _item_journal(tmp_path).reusable("x", {"view": "L-CC"}, [source], [output]) is MISSING


def test_a_touched_but_unchanged_file_is_reused_and_its_new_metadata_recorded(tmp_path):
    source = tmp_path / "in.png"
    source.write_bytes(b"input")
    journal = _item_journal(tmp_path)
    journal.record_item("x", 1, {}, [file_state(source)])
    os.utime(source, ns=(1, 1))
    reopened = _item_journal(tmp_path)
    assert reopened.reusable("x", {}, [source]) == 1
    assert reopened["x"]["inputs"][0]["stat"] == file_state(source)["stat"]  # next time: one stat, no hash


def test_a_journal_of_other_settings_is_never_reused(tmp_path):
    journal = _item_journal(tmp_path, {"weights": "aaa"})
    journal.record("x", 1)
    assert len(_item_journal(tmp_path, {"weights": "aaa"})) == 1
    assert len(_item_journal(tmp_path, {"weights": "bbb"})) == 0


def test_lines_written_under_other_settings_are_left_out_and_reported(tmp_path):
    # Two writers with different settings appending to one file (what the lock now prevents): each line
    # carries its settings' digest, so the other writer's results are never taken.
    ours = _item_journal(tmp_path, {"weights": "aaa"})
    ours.record("x", 1)
    other = Journal(ours.path, {"weights": "bbb"})  # starts the file afresh with its own header...
    other.record("y", 2)
    with open(ours.path, "a", encoding="utf-8") as f:  # ... and the first writer keeps appending to it
        f.write(ours._line("z", 3))
    with pytest.warns(JournalWarning, match="1 line\\(s\\) written under other settings"):
        reread = Journal(ours.path, {"weights": "bbb"})
    assert reread.entries == {"y": 2}


def test_corrupt_lines_are_reported_once_and_their_items_recomputed(tmp_path):
    journal = _item_journal(tmp_path)
    for key in "abcd":
        journal.record(key, key.upper())
    lines = journal.path.read_text().splitlines()
    lines[2] = "[1, 2"  # b: not JSON
    lines[3] = json.dumps({"value": "C"})  # c: no key
    journal.path.write_text("\n".join(lines) + "\n")
    with pytest.warns(JournalWarning) as caught:
        reread = _item_journal(tmp_path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(journal.path) in message and "2 unreadable line(s) (3, 4)" in message and "recomputed" in message
    assert reread.entries == {"a": "A", "d": "D"}
    # The file was rewritten without them: read again, it is clean.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _item_journal(tmp_path).entries == {"a": "A", "d": "D"}


def test_a_torn_last_line_is_dropped_silently_and_later_appends_start_on_a_new_line(tmp_path):
    journal = _item_journal(tmp_path)
    journal.record("a", 1)
    journal.record("b", 2)
    text = journal.path.read_text()
    journal.path.write_text(text[:-7])  # killed while appending b
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reread = _item_journal(tmp_path)
    assert reread.entries == {"a": 1}
    reread.record("c", 3)
    assert _item_journal(tmp_path).entries == {"a": 1, "c": 3}


def test_a_journal_without_a_readable_header_is_reported_and_started_afresh(tmp_path):
    path = tmp_path / "out" / ".journal.jsonl"
    path.parent.mkdir()
    path.write_text('"not a header"\n{"key": "a", "value": 1, "fp": "x"}\n')
    with pytest.warns(JournalWarning, match="no readable first line"):
        assert len(_item_journal(tmp_path)) == 0
    assert not path.exists()


def test_a_journal_of_mostly_superseded_lines_is_compacted_when_read(tmp_path):
    journal = _item_journal(tmp_path)
    for i in range(300):
        journal.record("x", i)  # one item re-recorded again and again (its files were touched)
    assert len(journal.path.read_text().splitlines()) == 301
    reread = _item_journal(tmp_path)
    assert reread.entries == {"x": 299} and len(reread.path.read_text().splitlines()) == 2
