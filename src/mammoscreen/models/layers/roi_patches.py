"""Saliency-guided patches, shared by GMIC and GLAM: top-t% pooling, greedy ROI proposal on the saliency
grid, grid-to-pixel coordinates and patch cropping, each as the official GMIC code computes it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def top_t_percent_pooling(saliency: torch.Tensor, percent_t: float) -> torch.Tensor:
    """Mean of the largest t% values of each map: (N, C, h, w) -> (N, C)."""
    n, c, h, w = saliency.shape
    k = max(1, int(round(h * w * percent_t)))
    return saliency.reshape(n, c, -1).topk(k, dim=2)[0].mean(dim=2)


def saliency_window(patch_size: tuple[int, int], input_size: tuple[int, int],
                    saliency_size: tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) a patch covers on the saliency grid, rounded as the official code does (0 when it is smaller
    than half a grid cell: no window to propose)."""
    return (int(np.round(patch_size[0] * saliency_size[0] / input_size[0])),
            int(np.round(patch_size[1] * saliency_size[1] / input_size[1])))


def retrieve_roi_locations(saliency: torch.Tensor, input_size: tuple[int, int], patch_size: tuple[int, int],
                           num_patches: int) -> torch.Tensor:
    """Greedy ROI proposal: upper-left (row, col) of each patch on the saliency-map grid, (N, K, 2).

    The maps are min-max normalised per class and summed; at each step the patch-sized window with the
    largest mean is chosen (first in raster order on ties) and zeroed before the next choice.
    """
    n, c, h, w = saliency.shape
    win = saliency_window(patch_size, input_size, (h, w))
    flat = saliency.reshape(n, c, -1)
    low = flat.min(dim=2, keepdim=True)[0].unsqueeze(-1)
    span = flat.max(dim=2, keepdim=True)[0].unsqueeze(-1) - low
    # A constant map has no preferred region; the official code divides by zero here and proposes
    # NaN-driven locations. Treat it as all zeros instead (patches then start at the top-left).
    span = torch.where(span > 0, span, torch.ones_like(span))
    current = ((saliency - low) / span).sum(dim=1, keepdim=True)

    rows = torch.arange(h, device=saliency.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=saliency.device).view(1, 1, 1, w)
    locations = []
    for _ in range(num_patches):
        pooled = F.avg_pool2d(current, win, stride=1)
        pooled_w = pooled.shape[-1]
        index = pooled.reshape(n, -1).argmax(dim=1)
        row, col = index // pooled_w, index % pooled_w
        locations.append(torch.stack([row, col], dim=1))
        inside = ((rows >= row.view(n, 1, 1, 1)) & (rows < (row + win[0]).view(n, 1, 1, 1))
                  & (cols >= col.view(n, 1, 1, 1)) & (cols < (col + win[1]).view(n, 1, 1, 1)))
        current = current * (~inside).to(current.dtype)
    return torch.stack(locations, dim=1)


def saliency_to_input_coordinates(locations: torch.Tensor, saliency_size: tuple[int, int],
                                  input_size: tuple[int, int]) -> torch.Tensor:
    """Scale saliency-grid positions to input pixels: round(index / h * H), in float64 like the official code."""
    loc = locations.detach().cpu().numpy().astype(np.float64)
    rows = np.around(loc[..., 0] / saliency_size[0] * input_size[0])
    cols = np.around(loc[..., 1] / saliency_size[1] * input_size[1])
    return torch.from_numpy(np.stack([rows, cols], axis=-1).astype(np.int64))


def crop_patches(images: torch.Tensor, locations: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """Cut (N, K) patches with the given upper-left corners from (N, 1, H, W) images.

    Parts of a patch outside the image are filled with the image's minimum, and the part inside is
    placed at the patch's bottom-right, as the official ``crop_pytorch`` does.
    """
    n, _, height, width = images.shape
    k = locations.shape[1]
    ph, pw = patch_size
    patches = images.new_empty((n, k, ph, pw))
    locs = locations.tolist()
    for i in range(n):
        image = images[i, 0]
        fill = None
        for j in range(k):
            r0, c0 = int(locs[i][j][0]), int(locs[i][j][1])
            r1, c1 = min(max(r0 + ph, 0), height), min(max(c0 + pw, 0), width)
            r0, c0 = min(max(r0, 0), height), min(max(c0, 0), width)
            if r1 - r0 == ph and c1 - c0 == pw:
                patches[i, j] = image[r0:r1, c0:c1]
                continue
            if fill is None:
                fill = image.min()
            patches[i, j] = fill
            patches[i, j, ph - (r1 - r0):, pw - (c1 - c0):] = image[r0:r1, c0:c1]
    return patches
