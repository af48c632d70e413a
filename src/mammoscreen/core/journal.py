"""What a re-run may reuse: journals of finished items, checked against the content of their files.

A long per-item stage (crop, centres, prediction, conversion) records each finished item in a
:class:`Journal`, one JSON line per item, flushed to disk at once, so an interrupted run loses at most
the items in progress. A re-run reuses a recorded result only if

* the journal was written under the same settings (its *fingerprint*: model, weights sha256, variant,
  options, preprocessing parameters) — a journal of other settings is set aside as a whole, and every
  line carries a digest of the fingerprint, so a line written by a run with other settings is never used;
* the item's own parameters (view, flip, metadata, window, ...) are the same (:func:`params_digest`);
* every input file still has the content it had (:func:`file_state`: size, modification and change
  time, inode and a sha256 of the content; the hash is computed once and recomputed only when the
  file's metadata changed, so an unchanged dataset costs one ``stat`` per file);
* every output file the item wrote is still there with the content it was written with.

Anything else is recomputed, and only that item. Lines that cannot be read (a damaged file) are reported
in one :class:`JournalWarning` and their items recomputed; a torn last line (the process was killed
while appending it) is dropped silently, since it is the expected trace of an interruption.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

from .files import PathLike, json_default, sha256_file, write_text_atomic
from .safejson import JSONInputError, as_json_data, loads_json

JOURNAL_FORMAT = 2
"""Version of the journal layout; journals of another version are set aside (their items recomputed)."""



class JournalWarning(UserWarning):
    """A journal had lines that could not be used; the items they recorded are recomputed."""


def _canonical(obj: Any) -> Any:
    return as_json_data(obj, default=json_default)


def params_digest(params: Any) -> str:
    """sha256 of an item's parameters in canonical JSON (key order and tuple/list do not matter)."""
    text = json.dumps(_canonical(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_state(path: PathLike, known: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """What a file is: ``{"stat": [size, mtime_ns, ctime_ns, inode], "sha256": ...}``, None if it is missing.

    The content hash is taken from ``known`` (an earlier state of the same file) when the file's metadata
    is unchanged, so checking an unchanged file costs one ``stat``. Any rewrite, replacement or copy
    changes the change time or inode, and the content is hashed again.
    """
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    if isinstance(known, dict) and known.get("stat") == stamp and isinstance(known.get("sha256"), str):
        return known
    return {"stat": stamp, "sha256": sha256_file(path)}


def same_content(recorded: Any, current: dict[str, Any] | None) -> bool:
    """Whether a recorded file state and a current one describe the same content (or both no file)."""
    if recorded is None or current is None:
        return recorded is None and current is None
    return isinstance(recorded, dict) and recorded.get("sha256") == current["sha256"]


class Journal:
    """An append-only JSON-lines record of finished work items, keyed by a string.

    Each :meth:`record` call appends one line and flushes it to disk, so a crash loses at most the item in
    progress. A journal is bound to a ``fingerprint`` of the settings that produced it: opening it with a
    different fingerprint starts it afresh, so changed settings never mix with old results. Lines that
    cannot be read are reported (:class:`JournalWarning`) and left out; the file is then rewritten without
    them, so later appends start on a clean line.

    Per-item stages use :meth:`record_item` and :meth:`reusable`, which keep with each result the item's
    parameters and the content of its input and output files, and reuse it only while they are unchanged.
    """

    def __init__(self, path: PathLike, fingerprint: Any = None):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self._canonical_fingerprint = _canonical(fingerprint)
        self.digest = params_digest(fingerprint)[:16]
        self.entries: dict[str, Any] = {}
        self._load()

    def _header(self) -> str:
        return json.dumps({"journal": JOURNAL_FORMAT, "fingerprint": self._canonical_fingerprint,
                           "digest": self.digest}) + "\n"

    def _line(self, key: str, value: Any) -> str:
        return json.dumps({"key": key, "value": value, "fp": self.digest}, default=json_default) + "\n"

    def _load(self) -> None:
        try:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return
        lines = text.split("\n")
        torn = lines.pop() != ""  # text after the last newline: a line cut short by an interruption
        header = _parse(lines[0]) if lines else None
        if not isinstance(header, dict) or "fingerprint" not in header:
            if lines:
                warnings.warn(f"{self.path}: journal has no readable first line; its {len(lines) - 1} record(s) are "
                              "ignored and their items recomputed", JournalWarning, stacklevel=3)
            self.remove()
            return
        if header.get("journal") != JOURNAL_FORMAT or header.get("fingerprint") != self._canonical_fingerprint:
            self.remove()  # written under other settings (or by an older version): nothing in it applies
            return
        corrupt, foreign = [], 0
        for number, line in enumerate(lines[1:], start=2):
            record = _parse(line)
            if not (isinstance(record, dict) and isinstance(record.get("key"), str) and "value" in record):
                corrupt.append(number)
            elif record.get("fp") != self.digest:
                foreign += 1
            else:
                self.entries[record["key"]] = record["value"]
        if corrupt or foreign:
            parts = []
            if corrupt:
                shown = ", ".join(map(str, corrupt[:5])) + (f" and {len(corrupt) - 5} more" if len(corrupt) > 5 else "")
                parts.append(f"{len(corrupt)} unreadable line(s) ({shown})")
            if foreign:
                parts.append(f"{foreign} line(s) written under other settings")
            warnings.warn(f"{self.path}: ignoring {' and '.join(parts)}; the items they recorded are recomputed",
                          JournalWarning, stacklevel=3)
        # Rewritten without the lines it could not use, and compacted when most lines are superseded
        # (an item re-recorded after its files were touched), so that it does not grow without bound.
        if corrupt or foreign or torn or len(lines) > 2 * len(self.entries) + 100:
            self._rewrite()

    def _rewrite(self) -> None:
        write_text_atomic(self.path, self._header() + "".join(self._line(k, v) for k, v in self.entries.items()))

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __getitem__(self, key: str) -> Any:
        return self.entries[key]

    def __len__(self) -> int:
        return len(self.entries)

    def record(self, key: str, value: Any) -> None:
        """Append a finished item and flush it to disk (raises OSError when the disk refuses)."""
        line = self._line(key, value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new_file = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write((self._header() if new_file else "") + line)
            f.flush()
            os.fsync(f.fileno())
        self.entries[key] = value

    def remove(self) -> None:
        """Delete the journal file."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # Items with their inputs and outputs: the checks that keep a re-run from reusing stale results.
    # An entry is {"result", "params", "inputs", "outputs"}: the stage's result, the digest of the item's
    # parameters, the states of its input files (in the stage's order) and of its output files (by path
    # relative to the journal's folder).

    def _relative(self, path: PathLike) -> str:
        return os.path.relpath(Path(path), self.path.parent)

    def reusable(self, key: str, params: Any, inputs: Sequence[PathLike] = (),
                 outputs: Sequence[PathLike] = ()) -> Any:
        """The recorded result of ``key`` if it still holds, else :data:`MISSING`.

        It holds when the parameters are the same and every input and output file has the recorded
        content. Files whose metadata changed but whose content did not are re-recorded with their new
        metadata (best effort: a journal that cannot be written only costs a re-hash next time).
        """
        entry = self.entries.get(key)
        if not isinstance(entry, dict) or entry.get("params") != params_digest(params):
            return MISSING
        recorded_inputs, recorded_outputs = entry.get("inputs"), entry.get("outputs")
        if not isinstance(recorded_inputs, list) or len(recorded_inputs) != len(inputs) \
                or not isinstance(recorded_outputs, dict):
            return MISSING
        new_inputs = [file_state(path, known) for path, known in zip(inputs, recorded_inputs)]
        if not all(same_content(old, new) for old, new in zip(recorded_inputs, new_inputs)):
            return MISSING
        new_outputs = dict(recorded_outputs)
        for path in outputs:
            name = self._relative(path)
            if name not in recorded_outputs or recorded_outputs[name] is None:
                return MISSING
            new_outputs[name] = file_state(path, recorded_outputs[name])
            if not same_content(recorded_outputs[name], new_outputs[name]):
                return MISSING
        if new_inputs != recorded_inputs or new_outputs != recorded_outputs:
            with contextlib.suppress(OSError):
                self.record(key, {**entry, "inputs": new_inputs, "outputs": new_outputs})
        return entry.get("result")

    def record_item(self, key: str, result: Any, params: Any, input_states: Sequence[dict[str, Any] | None],
                    outputs: Sequence[PathLike] = ()) -> None:
        """Record a finished item: its result, parameters, the states its inputs had *before* it was computed
        (so a change during the computation is caught next time) and the states of the outputs it wrote."""
        self.record(key, {"result": result, "params": params_digest(params), "inputs": list(input_states),
                          "outputs": {self._relative(p): file_state(p) for p in outputs}})


def _parse(line: str) -> Any:
    try:
        return loads_json(line, "journal line")  # size and depth limited: the journal is an input too
    except JSONInputError:
        return None


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""Returned by :meth:`Journal.reusable` when an item must be (re)computed."""
