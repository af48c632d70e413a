"""JSON from untrusted files with a size and a depth limit.

Python's parser recurses once per nesting level: a file of ``[[[[...`` ten thousand levels deep ends in a
``RecursionError`` (and anything that walks the result recursively would fail later). :func:`loads_json`
measures the nesting depth first - one vectorised pass over the text with strings blanked out - and
refuses the document before parsing when it is deeper than ``max_depth`` or larger than
``max_file_bytes`` (:mod:`mammoscreen.core.limits`). JSON has no references, so its size bounds
everything else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from .limits import InputLimitError, get_limits, limit_message, read_bounded


class JSONInputError(ValueError):
    """A JSON file is malformed, too large or nested too deeply."""


# A JSON string literal (escapes included); brackets inside strings do not nest. The closing quote is
# optional so that an unterminated string matches to the end once, instead of failing from every later
# quote (which would take quadratic time on a crafted file).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON text (0 for a scalar), without parsing it."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    data = _STRING.sub(b'""', data)
    codes = np.frombuffer(data, dtype=np.uint8)
    steps = (np.isin(codes, (ord("["), ord("{"))).astype(np.int32)
             - np.isin(codes, (ord("]"), ord("}"))).astype(np.int32))
    return int(np.cumsum(steps).max(initial=0))


def loads_json(text: str | bytes, source: str = "JSON") -> Any:
    """Parse a JSON document after checking its size and depth; errors name ``source``."""
    limits = get_limits()
    if len(text) > limits.max_file_bytes:
        raise JSONInputError(f"{source}: larger than {limits.max_file_bytes:,} bytes "
                             f"({limit_message('max_file_bytes')})")
    depth = json_depth(text)
    if depth > limits.max_depth:
        raise JSONInputError(f"{source}: JSON nested {depth} levels deep, more than {limits.max_depth} "
                             f"({limit_message('max_depth')})")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise JSONInputError(f"{source} is not valid JSON ({e})") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer of more digits than Python converts
        raise JSONInputError(f"{source}: not usable JSON ({e})") from None


def load_json(path: str | Path) -> Any:
    """Read and parse a JSON file (UTF-8) within the limits."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            data = read_bounded(f, str(path))
        except InputLimitError as e:
            raise JSONInputError(str(e)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JSONInputError(f"{path}: not UTF-8 text ({e})") from None
    return loads_json(text, str(path))


def as_json_data(obj: Any, default: Any = str) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, keys strings): for comparing our own records.
    ``default`` converts what JSON has no type for (as in :func:`json.dumps`)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=default))
