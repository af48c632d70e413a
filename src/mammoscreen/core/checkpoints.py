"""PyTorch checkpoints from untrusted files: ``torch.load(weights_only=True)`` and nothing else.

``weights_only=True`` makes PyTorch's unpickler accept only tensors and plain containers, so a crafted
checkpoint cannot run code. Before it runs, the archive's declared sizes are checked
(:func:`mammoscreen.core.archives.check_zip`): a checkpoint whose entries are deflated can otherwise
inflate a few hundred kilobytes into gigabytes. Training checkpoints are written in the same plain form
(state dicts, tensors, numbers, strings), so resuming a run loads them the same way.
"""

from __future__ import annotations

import mmap
import re
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

from .archives import check_zip
from .limits import InputLimitError
from .safepickle import MalformedPickleError, UnsafePickleError, check_structure, scan_opcodes


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
        except Exception as e:  # zipfile raises several types for a damaged directory (bad names, sizes)
            raise CheckpointError(f"{path}: damaged {what} archive ({type(e).__name__}: {e})") from None
    _check_pickles(path, what)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
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
    try:  # nesting and shared references, as for any pickle (tensors count as single elements)
        check_structure(loaded, str(path))
    except UnsafePickleError as e:
        raise CheckpointError(str(e)) from None
    return loaded


# Globals PyTorch's weights-only unpickler accepts that a checkpoint never needs and that allocate from a
# number in the file: bytearray(3 * 10**9) is 30 bytes of pickle.
_REFUSED_GLOBALS = {"builtins.bytearray", "__builtin__.bytearray", "?"}
_LEGACY_PICKLES = 5  # magic number, protocol, system info, the object, the storage keys; then raw storages


def _check_pickles(path: Path, what: str) -> None:
    """Scan the pickles of a checkpoint (memo indices, frames, globals) before PyTorch loads them."""
    found: set[str] = set()
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for entry in archive.infolist():
                    if entry.filename.endswith("data.pkl"):
                        scan_opcodes(archive.read(entry), f"{path}: {entry.filename}", globals_found=found)
        else:
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                position = 0
                for _ in range(_LEGACY_PICKLES):
                    position = scan_opcodes(data, str(path), position, found)  # type: ignore[arg-type]
    except (UnsafePickleError, MalformedPickleError) as e:
        detail = str(e).removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: not a loadable PyTorch {what} ({detail})") from None
    except (ValueError, OSError, zipfile.BadZipFile) as e:  # an empty file cannot be mapped, a damaged archive
        raise CheckpointError(f"{path}: not a loadable PyTorch {what} ({type(e).__name__}: {e})") from None
    refused = sorted(found & _REFUSED_GLOBALS)
    if refused:
        named = "a global it does not name directly" if refused == ["?"] else refused[0]
        raise CheckpointError(f"{path}: not a loadable PyTorch {what}: it calls {named}, which a state dict never "
                              "needs (it could allocate memory the file does not hold); nothing in it was run")


def state_dict_problem(state: Any) -> str | None:
    """Why ``state`` is not a state dict (a mapping keyed by parameter names), or None if it is one."""
    if not isinstance(state, Mapping):
        return f"expected a state dict (parameter name -> tensor), got {type(state).__name__}"
    bad_keys = [k for k in state if not isinstance(k, str)]
    if bad_keys:
        return (f"expected a state dict keyed by parameter names (strings), but {len(bad_keys)} of its "
                f"{len(state)} keys are not strings (e.g. {bad_keys[0]!r}, a {type(bad_keys[0]).__name__})")
    return None


# Loading weights into a model (every model and the interop readers use these)

class WeightsError(RuntimeError):
    """Weights are missing, corrupt or do not fit the model."""


class UnexpectedKeysWarning(UserWarning):
    """A checkpoint holds parameters the model does not use (they are ignored)."""


def load_checkpoint(path: str | Path) -> Any:
    """``torch.load`` a checkpoint on the CPU without executing pickled code (:func:`core.checkpoints.load_torch`)."""
    try:
        return load_torch(path)
    except CheckpointError as e:
        raise WeightsError(str(e)) from None


def load_state_dict_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load parameters strictly by name: a missing or misshapen key is an error, an extra key a warning."""
    import torch

    problem = state_dict_problem(state_dict)
    if problem is not None:
        raise WeightsError(f"{source}: {problem}")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise WeightsError(f"{source}: {len(missing)} parameters of {type(model).__name__} are missing ({shown}); "
                           "is this a checkpoint of this model?")
    for key, tensor in expected.items():
        value = state_dict[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(tensor.shape):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise WeightsError(f"{source}: parameter {key} has shape {shape}, the model expects {tuple(tensor.shape)}")
    unexpected = [k for k in state_dict if k not in expected]
    if unexpected:
        warnings.warn(f"{source}: ignoring {len(unexpected)} unused parameter(s): {', '.join(unexpected[:5])}",
                      UnexpectedKeysWarning, stacklevel=2)
    model.load_state_dict({k: state_dict[k] for k in expected}, strict=True)
    check_finite_parameters(model, source)


def check_finite_parameters(model: nn.Module, source: str = "checkpoint") -> None:
    """:class:`WeightsError` if a loaded parameter or buffer holds NaN or infinite values (also values that
    overflowed when the checkpoint's numbers were converted to the model's precision): such a model
    would give scores that are not numbers."""
    import torch

    bad = []
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() or tensor.is_complex():
            count = int((~torch.isfinite(tensor)).sum())
            if count:
                bad.append(f"{key} ({count} of {tensor.numel()})")
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise WeightsError(f"{source}: non-finite values (NaN or infinity) in {len(bad)} parameter(s): {shown}; the "
                           "checkpoint is corrupt or its training diverged")
