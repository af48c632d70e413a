"""Torch devices: choosing one from a name, and keeping GPU arithmetic identical to the CPU's."""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """A torch device from 'auto', 'cpu', 'cuda' or 'cuda:N', checking that it exists."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available (no GPU, or a CPU-only "
                             "PyTorch build); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) are visible")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}; use cpu, cuda or cuda:N")
    return device


@contextlib.contextmanager
def full_fp32(device: torch.device) -> Iterator[None]:
    """Run CUDA convolutions and matmuls in true float32 (no TF32), so GPU numbers match the CPU's.

    PyTorch lets cuDNN use TF32 for convolutions by default on Ampere and newer GPUs (~1e-3 relative
    error); parity with the published float32 implementations needs it off. No effect on the CPU.
    """
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                     allow_tf32=False):
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = matmul_tf32


def batch_to_device(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """A float32 (N, C, H, W) host batch on ``device``. On CUDA it goes through pinned (page-locked) memory
    with a non-blocking copy, in channels_last layout (cuDNN's fast path for convolutions); on the CPU it
    is the array itself, unchanged (no copy, the official layout)."""
    x = torch.from_numpy(batch)
    if device.type != "cuda":
        return x
    return x.pin_memory().to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def for_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` on ``device``, in eval mode; on CUDA with channels_last weights (see :func:`batch_to_device`)."""
    model = model.to(device).eval()
    if device.type != "cuda":
        return model
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # valid; missing from torch's stubs
