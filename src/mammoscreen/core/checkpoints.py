"""PyTorch checkpoints from untrusted files: ``torch.load(weights_only=True)`` and nothing else.

``weights_only=True`` makes PyTorch's unpickler accept only tensors and plain containers, so a crafted
checkpoint cannot run code. Before it runs, the archive's declared sizes are checked
(:func:`mammoscreen.core.archives.check_zip`): a checkpoint whose entries are deflated can otherwise
inflate a few hundred kilobytes into gigabytes. Training checkpoints are written in the same plain form
(state dicts, tensors, numbers, strings), so resuming a run loads them the same way.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

from .archives import check_zip
from .limits import InputLimitError


class CheckpointError(ValueError):
    """A checkpoint file is missing, not a plain PyTorch checkpoint, or beyond the limits."""


def load_torch(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, after the archive's size checks.

    Raises :class:`CheckpointError` naming the file for anything that cannot be loaded safely.
    """
    import torch  # here, not at module level: commands that never load weights start faster without torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    if zipfile.is_zipfile(path):  # the current format; the legacy format is one pickle plus raw storages
        try:
            check_zip(path, what)
        except InputLimitError as e:
            raise CheckpointError(str(e)) from None
        except (zipfile.BadZipFile, OSError) as e:
            raise CheckpointError(f"{path}: damaged {what} archive ({e})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises many types for foreign or corrupt files
        text = str(e)
        named = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.<>]+)", text)
        if named:
            raise CheckpointError(f"{path}: not a loadable PyTorch {what}: it names {named.group(1).rstrip('.')}, "
                                  "which is not a tensor or plain data; only plain state dicts are loaded (nothing "
                                  "in the file was run)") from None
        # PyTorch's own advice (load with weights_only=False) is exactly what must not be done with such a file.
        lines = [line for line in text.strip().splitlines() if line.strip() and "weights_only" not in line]
        first = lines[0].strip() if lines else ""
        raise CheckpointError(f"{path}: not a loadable PyTorch {what} ({type(e).__name__}: {first[:300]})") from None


def state_dict_problem(state: Any) -> str | None:
    """Why ``state`` is not a state dict (a mapping keyed by parameter names), or None if it is one."""
    if not isinstance(state, Mapping):
        return f"expected a state dict (parameter name -> tensor), got {type(state).__name__}"
    bad_keys = [k for k in state if not isinstance(k, str)]
    if bad_keys:
        return (f"expected a state dict keyed by parameter names (strings), but {len(bad_keys)} of its "
                f"{len(state)} keys are not strings (e.g. {bad_keys[0]!r}, a {type(bad_keys[0]).__name__})")
    return None
