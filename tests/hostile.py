"""Hostile inputs for the robustness tests: pickles written opcode by opcode, PNG headers, checkpoints.

Each builder returns the bytes an attacker would hand over; none of them is produced by mammoscreen's own
writers, so the tests that read them check the loaders against input they were not written for. Import as
``from hostile import ...`` (like ``testutils``). Only the standard library, numpy and torch are used, so
the CLI regression tests can import this module when run against another checkout of mammoscreen.
"""

from __future__ import annotations

import io
import pickle
import struct
import zlib
from pathlib import Path

PROTO2 = b"\x80\x02"


def _unicode(text: str) -> bytes:
    data = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _int(value: int) -> bytes:
    if 0 <= value < 2 ** 31:
        return b"J" + struct.pack("<i", value)  # BININT
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1


def deep_list(depth: int) -> bytes:
    """A list nested ``depth`` levels deep: [[[...]]] (the unpickler builds it without recursion)."""
    return PROTO2 + b"]" * depth + b"a" * (depth - 1) + b"."


def _laughs(levels: int, width: int) -> bytes:
    # memo 0: a string; memo k: a list of ``width`` references to memo k-1. Only the last stays on the stack.
    out = bytearray(_unicode("lol") + b"q\x00" + b"0")
    for level in range(1, levels + 1):
        out += b"](" + (b"h" + bytes([level - 1])) * width + b"e" + b"q" + bytes([level])
        if level < levels:
            out += b"0"  # POP
    return bytes(out)


def billion_laughs(levels: int = 10, width: int = 10) -> bytes:
    """A list holding ``width`` references to a list holding ``width`` references to ... : a few hundred
    bytes that a consumer copying the data (or converting it to JSON) expands to width**levels elements."""
    return PROTO2 + _laughs(levels, width) + b"."


def exam_list_laughs(levels: int = 9, width: int = 10) -> bytes:
    """An exam list whose one exam has an extra key holding the billion laughs."""
    exam = (b"}" + _unicode("L-CC") + b"](" + _unicode("a") + b"e" + b"s"  # {'L-CC': ['a']}
            + _unicode("horizontal_flip") + _unicode("NO") + b"s"
            + _unicode("laughs") + _laughs(levels, width) + b"s")
    return PROTO2 + b"]" + exam + b"a."


def exam_list_deep(depth: int = 100_000) -> bytes:
    """An exam list whose one exam has an extra key holding a list nested ``depth`` levels deep."""
    exam = (b"}" + _unicode("L-CC") + b"](" + _unicode("a") + b"e" + b"s"
            + _unicode("deep") + b"]" * depth + b"a" * (depth - 1) + b"s")
    return PROTO2 + b"]" + exam + b"a."


def build_on_list() -> bytes:
    """BUILD (set an object's state) applied to a list, which has no state: AttributeError in the C unpickler."""
    return PROTO2 + b"]}" + _unicode("a") + b"K\x01sb."


def exam_list_with_build() -> bytes:
    """An exam list (a list of one exam dict) followed by BUILD on the outer list."""
    exam = b"}" + _unicode("L-CC") + b"](" + _unicode("x") + b"e" + b"s"
    return PROTO2 + b"]" + exam + b"a" + b"}" + _unicode("a") + b"K\x01s" + b"b."


def huge_bytearray(length: int = 3 * 10 ** 9) -> bytes:
    """``bytearray(length)``: 30 bytes that ask for ``length`` bytes of zeros."""
    return PROTO2 + b"cbuiltins\nbytearray\n" + _int(length) + b"\x85R."


def memo_index(index: int = 2 ** 31 - 1) -> bytes:
    """A list stored in the memo under ``index``: the C unpickler sizes its memo table to the index."""
    return PROTO2 + b"]r" + struct.pack("<I", index) + b"."


def canary_call(canary: Path, how: str = "open") -> bytes:
    """A pickle whose loading, if its globals were honoured, creates the file ``canary``.

    ``how``: 'open' (builtins.open(canary, 'w')), 'system' (os.system('touch canary')), 'exec'
    (builtins.exec of Python code that writes the file) or 'popen' (subprocess.Popen(['touch', canary])).
    """
    canary = str(canary)
    if how == "open":
        return PROTO2 + b"cbuiltins\nopen\n(" + _unicode(canary) + _unicode("w") + b"tR."
    if how == "system":
        return PROTO2 + b"cposix\nsystem\n(" + _unicode(f"touch '{canary}'") + b"tR."
    if how == "exec":
        return PROTO2 + b"cbuiltins\nexec\n(" + _unicode(f"open({canary!r}, 'w').close()") + b"tR."
    if how == "popen":
        return PROTO2 + b"csubprocess\nPopen\n((" + _unicode("touch") + _unicode(canary) + b"ltR."
    raise ValueError(how)


class CanaryReduce:
    """An object whose pickle (made by the real pickler) calls ``builtins.open(canary, 'w')`` when loaded."""

    def __init__(self, canary: Path):
        self.canary = str(canary)

    def __reduce__(self):
        return (open, (self.canary, "w"))


def dataframe_with_canary(canary: Path) -> bytes:
    """A pickled DataFrame one of whose cells is a :class:`CanaryReduce`: what a crafted results.pkl looks like."""
    import pandas as pd

    frame = pd.DataFrame({"case_ID": ["1", "1", "2", "2"], "side": ["L", "R", "L", "R"], "label": [0, 1, 0, 0],
                          "Reader01_POM": [0.1, 0.9, 0.2, 0.3], "AI_Net_POM": [0.2, 0.8, 0.1, 0.4]})
    frame["note"] = [CanaryReduce(canary), None, None, None]
    buffer = io.BytesIO()
    pickle.dump(frame, buffer, protocol=4)
    return buffer.getvalue()


def torch_checkpoint_with_canary(canary: Path, payload: dict | None = None) -> bytes:
    """A torch.save()d dict (zip format) that holds a :class:`CanaryReduce` beside ``payload``."""
    import torch

    buffer = io.BytesIO()
    torch.save({**(payload or {}), "extra": CanaryReduce(canary)}, buffer)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# PNG
# ----------------------------------------------------------------------------------------------

def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int, bit_depth: int = 16, colour_type: int = 0, idat: bytes | None = None,
               truncate: int | None = None) -> bytes:
    """A PNG declaring ``width`` x ``height`` pixels; its IDAT is ``idat`` (default: a small zlib stream of zeros
    far shorter than the image) - a decompression bomb when the dimensions are large."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = idat if idat is not None else zlib.compress(b"\x00" * 4096, 9)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")
    return data[:truncate] if truncate is not None else data


def png_bomb(side: int = 19000) -> bytes:
    """A PNG of a few hundred bytes declaring ``side`` x ``side`` 16-bit pixels (as found in issue 11)."""
    row = b"\x00" * (1 + 2 * side)
    compressor = zlib.compressobj(9)
    # Only the first rows are stored: the header alone is the bomb (the decoder allocates the whole image).
    body = compressor.compress(row * 8) + compressor.flush()
    return png_header(side, side, 16, 0, body)
