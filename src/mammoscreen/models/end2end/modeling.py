"""end2end (Shen et al., Scientific Reports 2019): whole-image classifiers built from their Keras ``.h5`` files.

The released models are Keras 2.0.5 full-model files: a patch classifier trunk (ResNet50 or VGG16,
nested as a model inside the model, or flat) with convolutional "top" blocks, global average pooling
and a 2-way softmax. The network is built from the file's own ``model_config`` by the Keras graph
interpreter (:mod:`mammoscreen.interop.keras_graph`), so the same loader runs
``ddsm_resnet50_s10_[512-512-1024]x2.h5`` and the other released files made of these layer types.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...core.checkpoints import load_state_dict_into
from ...interop.keras_graph import KerasNetwork
from ...interop.keras_h5 import KerasFile, KerasFileError, read_keras_h5


class End2EndClassifier(nn.Module):
    """A released end2end model: a single-channel image in, class probabilities out.

    ``forward(x)`` takes (N, H, W) preprocessed images, copies them into the model's input channels
    (three identical channels for the ResNet50/VGG16 models, one for YaroslavNet) and returns the
    softmax output (N, classes); column 1 is the probability of malignancy.
    """

    def __init__(self, network: KerasNetwork, source: str = ""):
        super().__init__()
        self.network = network
        self.source = source
        shapes = network.input_shapes
        if len(shapes) != 1 or len(shapes[0]) != 4:
            raise KerasFileError(f"{source}: expected one image input (batch, rows, cols, channels), got {shapes}")
        self.input_channels = int(shapes[0][3] or 3)
        self.input_size = (shapes[0][1], shapes[0][2])  # may be (None, None)

    def forward(self, x: torch.Tensor, capture: set[str] | None = None,
                captured: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"expected (N, H, W) images, got shape {tuple(x.shape)}")
        # Channels-last feature maps: oneDNN and cuDNN convolve them without reordering every layer.
        x = x[:, None].expand(-1, self.input_channels, -1, -1).contiguous(memory_format=torch.channels_last)
        out = self.network(x, capture=capture, captured=captured)
        if isinstance(out, tuple) or out.dim() != 2:
            raise KerasFileError(f"{self.source}: the model's output is not a (batch, classes) array")
        return out


def build_end2end(keras_file: KerasFile, fold_batchnorm: bool = False) -> End2EndClassifier:
    """An :class:`End2EndClassifier` with the structure and weights of a parsed Keras file, in eval mode.

    ``fold_batchnorm`` merges BatchNormalization layers into the preceding convolutions (faster, same
    results up to float rounding); the layers keep their Keras names either way.
    """
    network = KerasNetwork(keras_file.model, keras_file.weights)
    model = End2EndClassifier(network, str(keras_file.path))
    state = {f"network.{k}": v for k, v in network.keras_state_dict(keras_file.weights).items()}
    load_state_dict_into(model, state, source=str(keras_file.path))
    if fold_batchnorm:
        network.fold_batchnorm()
    return model.to(memory_format=torch.channels_last).eval()


def load_end2end(path: str | Path, fold_batchnorm: bool = False) -> End2EndClassifier:
    """Load a released end2end Keras ``.h5`` file (h5py only, no TensorFlow)."""
    return build_end2end(read_keras_h5(path), fold_batchnorm)

