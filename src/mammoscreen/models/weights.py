"""Finding, downloading, verifying and loading model weights.

Checkpoints are loaded with ``torch.load(weights_only=True)``: a checkpoint file is never allowed to
run code. ``--weights official`` looks for the published file in the cache directory
(``$MAMMOSCREEN_HOME``, default ``~/.cache/mammoscreen``) and, if it is missing and downloads are
allowed, fetches it from its published URL, checks its sha256 and moves it into place atomically.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..core.files import sha256_file
from .registry import ModelSpec, WeightFile

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


class WeightsError(RuntimeError):
    """Weights are missing, corrupt or do not fit the model."""


class UnexpectedKeysWarning(UserWarning):
    """A checkpoint holds parameters the model does not use (they are ignored)."""


def cache_dir() -> Path:
    """Where downloaded weights are kept: ``$MAMMOSCREEN_HOME`` or ``~/.cache/mammoscreen``."""
    home = os.environ.get("MAMMOSCREEN_HOME")
    if home:
        return Path(home).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mammoscreen"


def download(url: str, destination: str | Path, sha256: str | None = None,
             progress: Callable[[int, int | None], None] | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``destination`` atomically, verifying its sha256 when given.

    The data goes to a temporary file beside the destination; a size or checksum mismatch deletes it
    and raises :class:`WeightsError`, so a corrupted or interrupted download never takes the place of
    the real file.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - URLs come from the registry
            except (urllib.error.URLError, OSError) as e:
                raise WeightsError(f"cannot download {url}: {e}") from None
            with response:
                total = response.headers.get("Content-Length")
                total = int(total) if total else None
                done = 0
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            if total is not None and done != total:
                raise WeightsError(f"download of {url} was cut short ({done} of {total} bytes)")
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise WeightsError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest.hexdigest()}; "
                               "the file was not saved")
        os.replace(tmp, destination)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return destination


PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
"""Weights shipped inside the package (the project's own models, e.g. the synthetic-data demo)."""


def bundled_weights_path(spec: ModelSpec, variant: str | None = None) -> Path:
    """The packaged weight file of a model with bundled weights, checked against its sha256."""
    wf = spec.weight_file(variant)
    path = PRETRAINED_DIR / wf.filename
    if not path.is_file():
        raise WeightsError(f"the bundled weights of {spec.name} ({path}) are missing from this installation; "
                           "reinstall mammoscreen")
    if wf.sha256 and sha256_file(path) != wf.sha256:
        raise WeightsError(f"{path} does not match the registered sha256 {wf.sha256} of {spec.name}; the "
                           "installation is damaged or the file was replaced - reinstall mammoscreen")
    return path


def _has_bundled_weights(spec: ModelSpec, variant: str | None) -> bool:
    variant = variant or spec.default_variant
    return variant in spec.weights and spec.weights[variant].bundled


def official_weights_path(spec: ModelSpec, variant: str | None = None, *, allow_download: bool = True,
                          directory: str | Path | None = None) -> Path:
    """Path of an official weight file in the cache, downloading (and verifying) it if needed.

    For a model whose weights ship with the package, the bundled file (sha256-verified).
    """
    wf = spec.weight_file(variant)
    if wf.bundled:
        return bundled_weights_path(spec, variant)
    directory = Path(directory) if directory is not None else cache_dir() / spec.name
    path = directory / wf.filename
    if path.is_file():
        if wf.sha256 and sha256_file(path) != wf.sha256:
            raise WeightsError(f"{path} does not match the published sha256 {wf.sha256} of {wf.filename}; "
                               "delete it to download it again")
        return path
    if not allow_download or wf.url is None:
        raise WeightsError(
            f"official weights for {spec.name} ({wf.filename}) are not in {directory}. Without internet access, "
            f"download {wf.url or wf.filename} elsewhere and copy it there (or set MAMMOSCREEN_HOME), or pass "
            "--weights PATH.")
    print(f"downloading {wf.filename} for {spec.name} from {wf.url} ({wf.license or 'see the model licence'})")
    return download(wf.url, path, wf.sha256)


def resolve_weight_path(spec: ModelSpec, weights: str | Path, variant: str | None = None, *,
                        allow_download: bool = True) -> Path:
    """A checkpoint file from ``weights``: a file, a directory holding the official file name, or 'official'.

    ``None`` means the bundled weights of a model that ships them.
    """
    if weights is None or str(weights) == "":
        if _has_bundled_weights(spec, variant):
            return bundled_weights_path(spec, variant)
        raise WeightsError(f"no weights given for {spec.name} (pass a file, a directory or 'official')")
    if str(weights) == "official":
        return official_weights_path(spec, variant, allow_download=allow_download)
    path = Path(weights)
    if path.is_dir():
        wf = spec.weight_file(variant)
        candidate = path / wf.filename
        if not candidate.is_file():
            raise WeightsError(f"{path} does not contain {wf.filename} (the weights of {spec.name} variant "
                               f"{variant or spec.default_variant})")
        return candidate
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return path


def weights_problem(spec: ModelSpec, weights: str | Path | None, variant: str | None = None) -> str | None:
    """Why ``weights`` cannot provide the files of ``spec``'s ``variant``, or None if they look available.

    A cheap check made before a long run starts (no checkpoint is loaded): a file must exist, a
    directory must hold the official file name(s), 'official' needs the file in the cache or a
    published URL to download it from. A variant that is not itself a weight file (e.g. GMIC's
    'ensemble') needs every file of the model.
    """
    if (weights is None or str(weights) in ("", "official")) and _has_bundled_weights(spec, variant):
        path = PRETRAINED_DIR / spec.weight_file(variant).filename
        return None if path.is_file() else f"the bundled weights of {spec.name} ({path}) are missing; reinstall"
    if weights is None or str(weights) == "":
        return f"no weights given for {spec.name} (pass --weights {spec.name}=PATH, a directory, or 'official')"
    variant = variant or spec.default_variant
    files = [spec.weights[variant]] if variant in spec.weights else list(spec.weights.values())
    if str(weights) == "official":
        directory = cache_dir() / spec.name
        absent = [wf for wf in files if not (directory / wf.filename).is_file() and wf.url is None]
        if absent:
            return (f"official weights for {spec.name} ({', '.join(wf.filename for wf in absent)}) are not in "
                    f"{directory} and have no download URL")
        return None
    path = Path(weights)
    if path.is_dir():
        absent = [wf.filename for wf in files if not (path / wf.filename).is_file()]
        if absent:
            return f"{path} does not contain {', '.join(absent)} (weights of {spec.name} {variant or ''})".rstrip()
        return None
    if not path.is_file():
        return f"weights file not found: {path}"
    if len(files) > 1:
        return (f"{spec.name} {variant} needs {len(files)} weight files ({', '.join(wf.filename for wf in files)}): "
                "pass a directory holding them, or 'official'")
    return None


def load_checkpoint(path: str | Path) -> Any:
    """``torch.load`` a checkpoint on the CPU without executing pickled code."""
    import torch  # here, not at module level: commands that never load weights start faster without torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises many types for foreign or corrupt files
        raise WeightsError(f"{path}: not a loadable PyTorch checkpoint of tensors ({type(e).__name__}: {e}). "
                           "Only plain state dicts can be loaded safely.") from None


def load_state_dict_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load parameters strictly by name: a missing or misshapen key is an error, an extra key a warning."""
    import torch

    if not isinstance(state_dict, Mapping) or not all(isinstance(k, str) for k in state_dict):
        raise WeightsError(f"{source}: expected a state dict (parameter name -> tensor), got {type(state_dict).__name__}")
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


__all__ = ["PRETRAINED_DIR", "bundled_weights_path", "WeightFile", "WeightsError", "UnexpectedKeysWarning", "cache_dir", "download", "official_weights_path",
           "resolve_weight_path", "weights_problem", "load_checkpoint", "load_state_dict_into",
           "check_finite_parameters"]
