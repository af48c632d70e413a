"""Finding, downloading, verifying and loading model weights.

Checkpoints are loaded with ``torch.load(weights_only=True)`` (through :mod:`mammoscreen.core.checkpoints`):
a checkpoint file is never allowed to run code. ``--weights official`` looks for the published file in the
cache directory (``$MAMMOSCREEN_HOME``, default ``~/.cache/mammoscreen``) and, if it is missing and
downloads are allowed, fetches it from its published URL, checks its sha256 and moves it into place
atomically.

Downloads are verified or refused: only ``https`` URLs are fetched (plain ``http`` only from the loopback
interface, which never leaves the machine, e.g. a local mirror or a test server), and redirects to plain
``http`` are refused. A file published without a sha256 is downloaded only when unverified downloads were
allowed explicitly (``--allow-unverified``, :func:`allow_unverified_downloads` or
``MAMMOSCREEN_ALLOW_UNVERIFIED=1``); the sha256 it had is printed and recorded (:data:`UNVERIFIED_DOWNLOADS`,
which ``mammoscreen run`` writes into ``run_summary.json``) so that the file can be pinned afterwards.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..core.checkpoints import (
    UnexpectedKeysWarning,
    WeightsError,
    check_finite_parameters,
    load_checkpoint,
    load_state_dict_into,
)
from ..core.files import sha256_file
from .registry import ModelSpec, WeightFile

if TYPE_CHECKING:  # pragma: no cover
    pass


def cache_dir() -> Path:
    """Where downloaded weights are kept: ``$MAMMOSCREEN_HOME`` or ``~/.cache/mammoscreen``."""
    home = os.environ.get("MAMMOSCREEN_HOME")
    if home:
        return Path(home).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mammoscreen"


_ALLOW_UNVERIFIED: bool | None = None
UNVERIFIED_DOWNLOADS: list[dict[str, str]] = []
"""Files downloaded in this process without a published sha256: {model, file, url, sha256, path}."""


def unverified_downloads() -> list[dict[str, str]]:
    """Copies of the records of :data:`UNVERIFIED_DOWNLOADS` (for a run's provenance)."""
    return [dict(record) for record in UNVERIFIED_DOWNLOADS]


def allow_unverified_downloads(allow: bool = True) -> None:
    """Allow (or forbid again) downloading weight files that have no published sha256."""
    global _ALLOW_UNVERIFIED
    _ALLOW_UNVERIFIED = bool(allow)


def unverified_downloads_allowed() -> bool:
    if _ALLOW_UNVERIFIED is not None:
        return _ALLOW_UNVERIFIED
    return os.environ.get("MAMMOSCREEN_ALLOW_UNVERIFIED", "").strip().lower() in ("1", "yes", "true")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Why mammoscreen will not download ``url`` (plain http to another machine, not a web URL), or None."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return None
    if parts.scheme == "http":
        if _is_loopback(parts.hostname):
            return None
        return (f"{url} is plain http: anyone on the way could replace the file, so mammoscreen does not download "
                "it; fetch it yourself over a channel you trust and pass --weights PATH")
    return f"{url} is not an https URL"


class _SecureRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        problem = url_problem(newurl)
        if problem is not None:
            raise WeightsError(f"{req.full_url} redirects to {newurl}; refused: {problem}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SecureRedirects)


def download(url: str, destination: str | Path, sha256: str | None = None,
             progress: Callable[[int, int | None], None] | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``destination`` atomically, verifying its sha256 when given.

    The data goes to a temporary file beside the destination; a size or checksum mismatch deletes it
    and raises :class:`WeightsError`, so a corrupted or interrupted download never takes the place of
    the real file.
    """
    problem = url_problem(url)
    if problem is not None:
        raise WeightsError(f"refusing to download: {problem}")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = _OPENER.open(url, timeout=timeout)  # noqa: S310 - https (or loopback) only, checked above
            except WeightsError:
                raise
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
    problem = download_problem(spec, wf)
    if problem is not None:
        raise WeightsError(problem)
    print(f"downloading {wf.filename} for {spec.name} from {wf.url} ({wf.license or 'see the model licence'})",
          file=sys.stderr)
    path = download(wf.url, path, wf.sha256)
    if not wf.sha256:
        digest = sha256_file(path)
        UNVERIFIED_DOWNLOADS.append({"model": spec.name, "file": wf.filename, "url": wf.url, "sha256": digest,
                                     "path": str(path)})
        print(f"{wf.filename} has no published checksum; downloaded without verification, sha256 {digest} "
              "(recorded in the run's provenance: compare it with a trusted copy to pin the file)", file=sys.stderr)
    return path


def download_problem(spec: ModelSpec, wf: WeightFile) -> str | None:
    """Why the published file ``wf`` of ``spec`` will not be downloaded (plain http, no checksum), or None."""
    if wf.url is None:
        return f"{wf.filename} of {spec.name} has no published URL"
    problem = url_problem(wf.url)
    if problem is not None:
        return f"{spec.name}: {problem}"
    if not wf.sha256 and not unverified_downloads_allowed():
        return (f"{wf.filename} of {spec.name} is published without a sha256, so a download cannot be verified; "
                "pass --allow-unverified to download it anyway (its sha256 is then recorded in the run's "
                "provenance), or download it yourself and pass --weights PATH")
    return None


def resolve_weight_path(spec: ModelSpec, weights: str | Path | None, variant: str | None = None, *,
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
        for wf in files:
            if not (directory / wf.filename).is_file() and (problem := download_problem(spec, wf)) is not None:
                return f"{problem} (not in the cache {directory})"
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


__all__ = ["PRETRAINED_DIR", "bundled_weights_path", "WeightFile", "WeightsError", "UnexpectedKeysWarning", "cache_dir",
           "download", "official_weights_path", "resolve_weight_path", "weights_problem", "load_checkpoint",
           "load_state_dict_into", "check_finite_parameters", "allow_unverified_downloads",
           "unverified_downloads_allowed", "url_problem", "download_problem", "UNVERIFIED_DOWNLOADS",
           "unverified_downloads"]
