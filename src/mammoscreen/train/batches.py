"""Training batches, and what BatchNorm needs of them.

In training mode a BatchNorm layer normalises each channel with the mean and variance of that channel's values
in the batch, and a batch that gives it one value per channel has no variance: PyTorch refuses it. In GMIC
the fewest values per channel reach the last layers of each network: the saliency map's rows x cols per image
in the global network, and K patches x the local network's output rows x cols in the local one. With one
patch (K = 1) of at most 32x32 pixels the local network ends in a 1x1 map, so one image gives one value: such
a config trains only on batches of two images or more. The published configs give dozens per image.
"""

from __future__ import annotations

from typing import Sequence

from ..models.gmic.modeling import GMICConfig
from ..models.layers.resnet import resnet_v1_output_size


def local_output_size(config: GMICConfig) -> tuple[int, int]:
    """(rows, cols) of the local network's feature map of one patch."""
    return (resnet_v1_output_size(config.patch_size[0], len(config.local_blocks)),
            resnet_v1_output_size(config.patch_size[1], len(config.local_blocks)))


def batchnorm_values_per_image(config: GMICConfig) -> int:
    """The fewest values per channel that one image gives any BatchNorm layer of GMIC in a training forward."""
    rows, cols = config.saliency_size
    local_rows, local_cols = local_output_size(config)
    return min(rows * cols, config.num_patches * local_rows * local_cols)


def smallest_batch(config: GMICConfig) -> int:
    """The fewest images a training batch of ``config`` can have: 1, or 2 when one image gives BatchNorm a
    single value per channel."""
    return 1 if batchnorm_values_per_image(config) > 1 else 2


def why_one_image_is_too_few(config: GMICConfig) -> str:
    """What gives BatchNorm a single value per channel for one image of ``config`` (for messages)."""
    rows, cols = config.saliency_size
    if rows * cols == 1:
        return "the global network ends in a 1x1 saliency map"
    local_rows, local_cols = local_output_size(config)
    ph, pw = config.patch_size
    return (f"{config.num_patches} patch of {ph}x{pw} pixels, which the local network turns into a "
            f"{local_rows}x{local_cols} feature map")


def epoch_batches(indices: Sequence[int], batch_size: int, smallest: int = 1) -> list[list[int]]:
    """``indices`` cut into consecutive batches of ``batch_size``; a last batch with fewer than ``smallest``
    images joins the one before it rather than being dropped (no image is left out of an epoch)."""
    batches = [list(indices[start:start + batch_size]) for start in range(0, len(indices), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < smallest:
        batches[-2].extend(batches.pop())
    return batches
