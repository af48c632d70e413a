"""Device names: what exists is accepted, anything else is one clear error."""

import pytest
import torch

from mammoscreen.core.device import resolve_device


def test_device_names():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device|unsupported device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
