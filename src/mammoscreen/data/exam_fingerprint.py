"""A content fingerprint of an exam list, for runs that must not reuse a result whose inputs changed (training's
resume check, the prediction engine's exam-level journal).

Training identifies an exam list read from a file by the sha256 of the file's bytes; one given in memory (a
list of :class:`~mammoscreen.data.exams.Exam` through the Python API) has no bytes, and the engine holds every
list as exams, so the exams are serialised canonically and hashed: every field of every exam, in exam order,
with dict entries sorted, so the fingerprint depends on the content only - not on dict insertion order, object
identity or the Python session. Tuples and lists (and NumPy arrays and scalars) holding the same values count
as the same content, as they do when an exam list is read. Anything but plain data is refused rather than
hashed through its ``repr``, which may hold a memory address or leave out part of the value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Sequence

import numpy as np

from .exams import Exam, ExamListError

_SCALARS = (str, int, float, bool, type(None))


def _canonical(value: Any, where: str, use: str) -> Any:
    """JSON-ready form in which every container is tagged (``["list", items]``, ``["dict", sorted pairs]``):
    a scalar is never a JSON array, so two different values never serialise alike."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return ["list", [_canonical(v, where, use) for v in value]]
    if isinstance(value, dict):
        pairs = [[_canonical(k, where, use), _canonical(v, f"{where}[{k!r}]", use)] for k, v in value.items()]
        pairs.sort(key=lambda pair: json.dumps(pair[0], sort_keys=True))
        return ["dict", pairs]
    raise ExamListError(f"{where}: a {type(value).__name__} is not plain data (strings, numbers, lists, dicts); "
                        f"convert it before {use}")


def exam_list_fingerprint(exams: Sequence[Exam], source: str = "exam list", use: str = "training") -> str:
    """sha256 (hex) of the canonical serialisation of ``exams``; ``source`` names the list and ``use`` what it is
    for in errors."""
    digest = hashlib.sha256()
    for index, exam in enumerate(exams):
        where = f"{source}: exam {index}"
        if not isinstance(exam, Exam):
            raise ExamListError(f"{where}: expected an Exam, got {type(exam).__name__}")
        fields = {f.name: _canonical(getattr(exam, f.name), f"{where}, {f.name}", use)
                  for f in dataclasses.fields(exam)}
        digest.update(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return digest.hexdigest()
