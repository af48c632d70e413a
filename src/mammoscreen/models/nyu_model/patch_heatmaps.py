"""Patch-classifier heatmaps: the benign and malignant input channels of the DMV-CNN image+heatmaps models.

The official heatmap stage (``run_producer.py`` of nyukat/breast_cancer_classifier), reproduced:

1. the cropped mammogram (16-bit PNG) is converted to float64 and standardised over the whole image;
2. 256x256 patches are taken on a grid: along an axis of length ``L`` there are ``(L - 256) // 70 + 1``
   patches at stride 70, plus one more if 70 does not divide ``L - 256``; the resulting overlap is spread
   over the steps, ``overlap % steps`` randomly chosen steps being one pixel shorter. The choice uses
   Python's :mod:`random` (``random.sample``), rows' strides drawn before columns'. The last patch of
   each axis ends flush with the image;
3. each patch, replicated to three channels, goes through the DenseNet-121 patch classifier; softmax;
4. the malignant heatmap is class 0, the benign heatmap class 1: per pixel, the mean probability of the
   patches covering it (accumulated in float32 in patch order: columns outer, rows inner).

Seeding differs between the models: nyu_model seeds :mod:`random` once per run (the strides of an image
depend on every image before it), nyu_model_single once per image. :func:`plan_patch_grids` computes the
grids of a whole run up front from the image shapes alone, so images can then be processed in any order,
resumed or skipped without changing anyone's grid.

The patch batches of an image can be classified elsewhere: :class:`PatchClassifier` hands them to its
``pool`` (a :class:`BatchPool`), which by default runs them here one after the other; the Ray engine gives
one that spreads them over its workers (:mod:`mammoscreen.engine.ray.patches`). Every batch is the same
tensor and goes through the same network wherever it runs, so the heatmaps do not change.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np
import torch

from ...core.memory import keep_freed_memory
from ..layers.densenet import DenseNet, FusedDenseNet, fuse_densenet

PATCH_SIZE = 256
PATCH_STRIDE = 70
MALIGNANT_CLASS = 0
BENIGN_CLASS = 1
OFFICIAL_BATCH_SIZE = 100
HEATMAP_PRECISIONS = ("float32", "bfloat16")


def heatmap_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """The arithmetic type for ``precision`` on ``device``; an error where it would not run natively.

    ``float32`` is the official arithmetic (heatmaps equal to about 1e-6). ``bfloat16`` is an opt-in
    approximation (probabilities within a few 1e-3, see docs/models/nyu_model.md#speed) for hardware with
    native bfloat16 arithmetic, where it is about 1.7x faster; elsewhere it would be slower, so it is refused.
    """
    if precision == "float32":
        return torch.float32
    if precision != "bfloat16":
        raise ValueError(f"unknown heatmap precision {precision!r}; choose {' or '.join(HEATMAP_PRECISIONS)}")
    device = torch.device(device)
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    else:
        supported = bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    if not supported:
        raise ValueError(f"heatmap precision bfloat16: this {device.type.upper()} has no native bfloat16 arithmetic "
                         "(CPUs need AVX512-BF16 or AMX), so it would be slower than float32; "
                         "use --heatmap-precision float32")
    return torch.bfloat16


def stride_list(length: int, rng: random.Random, patch_size: int = PATCH_SIZE, stride: int = PATCH_STRIDE) -> list[int]:
    """The official strides between consecutive patches along an axis of ``length`` pixels."""
    if length < patch_size:
        raise ValueError(f"image side of {length} pixels is shorter than a {patch_size}-pixel patch")
    count = (length - patch_size) // stride + 1
    left_over = (length - patch_size) % stride
    if left_over == 0:
        return [stride] * (count - 1)
    # One more patch, flush with the end: the overlap it creates is spread over all steps.
    overlap = stride - left_over
    steps = count
    base = stride - overlap // steps
    strides = [base] * steps
    for step in rng.sample(range(steps), overlap % steps):
        strides[step] = base - 1
    return strides


@dataclass(frozen=True)
class PatchGrid:
    """Where the patches of one image lie (in the orientation the patches are taken from)."""

    image_shape: tuple[int, int]
    row_strides: tuple[int, ...]  # the official ``width_stride_list``
    col_strides: tuple[int, ...]  # the official ``length_stride_list``
    patch_size: int = PATCH_SIZE

    @property
    def row_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.row_strides, dtype=np.int64)]).astype(np.int64)

    @property
    def col_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.col_strides, dtype=np.int64)]).astype(np.int64)

    def offsets(self) -> np.ndarray:
        """(n, 2) upper-left (row, col) of every patch in the official order (columns outer, rows inner)."""
        rows, cols = self.row_offsets, self.col_offsets
        return np.stack([np.tile(rows, len(cols)), np.repeat(cols, len(rows))], axis=1)

    def __len__(self) -> int:
        return (len(self.row_strides) + 1) * (len(self.col_strides) + 1)


def patch_grid(image_shape: tuple[int, int], rng: random.Random, patch_size: int = PATCH_SIZE,
               stride: int = PATCH_STRIDE) -> PatchGrid:
    """The patch grid of one image, drawing from ``rng`` exactly as the official code (rows first)."""
    rows = stride_list(int(image_shape[0]), rng, patch_size, stride)
    cols = stride_list(int(image_shape[1]), rng, patch_size, stride)
    return PatchGrid((int(image_shape[0]), int(image_shape[1])), tuple(rows), tuple(cols), patch_size)


def plan_patch_grids(shapes: Iterable[tuple[str, tuple[int, int] | None]], seed: int = 0,
                     per_image_seed: bool = False) -> dict[str, PatchGrid | Exception]:
    """Patch grids of a run: ``shapes`` is (image name, shape) in the official processing order.

    With ``per_image_seed`` every image starts from ``random.seed(seed)`` (nyu_model_single); otherwise one
    stream runs through all images (nyu_model). A shape of None (an unreadable image) draws nothing; an
    image too small for a patch gets its exception instead of a grid (the official run would stop there).
    """
    rng = random.Random(seed)
    grids: dict[str, PatchGrid | Exception] = {}
    for name, shape in shapes:
        if per_image_seed:
            rng.seed(seed)
        if shape is None:
            continue
        try:
            grids[name] = patch_grid(shape, rng)
        except ValueError as error:
            grids[name] = ValueError(f"{name}: {error}; no heatmaps can be computed for it")
    return grids


def standardize_float64(image: np.ndarray) -> np.ndarray:
    """The heatmap stage's standardisation: float64, (x - mean) / max(std, 1e-5) over the whole image."""
    out = np.array(image, dtype=np.float64, order="C", copy=True)
    out -= np.mean(out)
    out /= np.maximum(np.std(out), 10 ** (-5))
    return out


def accumulate_heatmap(patch_values: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """Per-pixel mean of the patch values over the patches covering it, as the official float32 loop."""
    total = np.zeros(grid.image_shape, dtype=np.float32)
    count = np.zeros(grid.image_shape, dtype=np.float32)
    size = grid.patch_size
    for value, (r, c) in zip(np.asarray(patch_values, dtype=np.float32), grid.offsets()):
        total[r:r + size, c:c + size] += value
        count[r:r + size, c:c + size] += 1
    return total / count


@dataclass
class Heatmaps:
    """The heatmaps of one image (float32, in the orientation of the patches) and the patch outputs."""

    benign: np.ndarray
    malignant: np.ndarray
    patch_probabilities: np.ndarray  # (n, num_classes) float32, patch order
    grid: PatchGrid


class BatchPool(Protocol):
    """Where patch batches are classified: ``map`` gives ``classify(batch)`` for every batch, in order.

    ``labels[i]`` names the images batch ``i`` holds patches of (for a pool that records where they ran).
    """

    def map(self, classify: Callable[[np.ndarray], np.ndarray], batches: Iterator[np.ndarray],
            labels: Sequence[tuple[str, ...]]) -> list[np.ndarray]:
        ...


class InProcessPool:
    """The default :class:`BatchPool`: every batch here, one after the other."""

    def map(self, classify: Callable[[np.ndarray], np.ndarray], batches: Iterator[np.ndarray],
            labels: Sequence[tuple[str, ...]]) -> list[np.ndarray]:
        return [classify(batch) for batch in batches]


class PatchClassifier:
    """Runs the DenseNet patch classifier over patch grids; see the module docstring.

    ``fast=True`` (default) uses :class:`~mammoscreen.models.layers.densenet.FusedDenseNet`, skips the network
    for patches lying entirely in the zero background (they are all the same standardised constant: one
    is classified and its output reused) and batches patches of several images together. ``fast=False``
    runs the reference network one official batch (100 patches) at a time, for comparisons.
    ``precision="bfloat16"`` (fast only) runs the fused network in bfloat16: see :func:`heatmap_dtype`.
    """

    def __init__(self, model: DenseNet, device: torch.device | str = "cpu", batch_size: int = 32,
                 fast: bool = True, precision: str = "float32"):
        self.device = torch.device(device)
        self.dtype = heatmap_dtype(precision, self.device)
        if self.dtype != torch.float32 and not fast:
            raise ValueError("heatmap precision bfloat16 needs the fast patch classifier (fast=True)")
        self.precision = precision
        if self.device.type == "cpu":
            keep_freed_memory()  # large activations without page faults: see mammoscreen.core.memory
        self.model = model.to(self.device).eval()
        self.fast = fast
        self.batch_size = batch_size if fast else OFFICIAL_BATCH_SIZE
        self.fused: FusedDenseNet | None = fuse_densenet(self.model).to(self.dtype) if fast else None
        self.num_classes = model.classifier.out_features
        self.pool: BatchPool = InProcessPool()

    def patch_probabilities(self, images: Sequence[np.ndarray], grids: Sequence[PatchGrid],
                            names: Sequence[str] | None = None) -> list[np.ndarray]:
        """Softmax outputs (n_i, classes) float32 for the patches of each standardised float64 image.

        The batches go through ``self.pool``; ``names`` (one per image) label them for the pool's record."""
        jobs: list[tuple[int, int, int, int]] = []  # (image, patch index, row, col) to classify
        results = [np.zeros((len(g), self.num_classes), dtype=np.float32) for g in grids]
        reuse: list[tuple[int, np.ndarray, int]] = []  # (image, patch indices, job index of the representative)
        images32 = [np.asarray(img, dtype=np.float32) for img in images]  # the official FloatTensor rounding
        for i, (image, grid) in enumerate(zip(images, grids)):
            offsets = grid.offsets()
            if self.fast:
                background = _background_patches(image, offsets, grid.patch_size)
            else:
                background = np.zeros(len(offsets), dtype=bool)
            first_background = None
            for k, (r, c) in enumerate(offsets):
                if background[k] and first_background is not None:
                    continue
                if background[k]:
                    first_background = len(jobs)
                jobs.append((i, k, int(r), int(c)))
            if first_background is not None and background.sum() > 1:
                reuse.append((i, np.flatnonzero(background), first_background))
        chunks = [jobs[start:start + self.batch_size] for start in range(0, len(jobs), self.batch_size)]
        image_names = list(names) if names is not None else [str(i) for i in range(len(images))]
        labels = [tuple(dict.fromkeys(image_names[i] for i, _, _, _ in chunk)) for chunk in chunks]
        batches = (self.input_batch(images32, chunk, grids) for chunk in chunks)  # built as the pool takes them
        outputs = np.zeros((len(jobs), self.num_classes), dtype=np.float32)
        start = 0
        for chunk, probabilities in zip(chunks, self.pool.map(self.classify, batches, labels)):
            outputs[start:start + len(chunk)] = probabilities
            start += len(chunk)
        for job, (i, k, _, _) in enumerate(jobs):
            results[i][k] = outputs[job]
        for i, indices, job in reuse:
            results[i][indices] = outputs[job]
        return results

    def input_batch(self, images32: Sequence[np.ndarray], chunk: Sequence[tuple[int, int, int, int]],
                    grids: Sequence[PatchGrid]) -> np.ndarray:
        """The network input (float32, N x C x H x W) of one batch of (image, patch, row, col) jobs."""
        size = grids[chunk[0][0]].patch_size
        if self.fast:  # one channel, padded for the fused stem
            before, after = self.fused.stem_padding()
            batch = torch.zeros((len(chunk), 1, size + before + after, size + before + after), dtype=torch.float32)
            for j, (i, _, r, c) in enumerate(chunk):
                batch[j, 0, before:before + size, before:before + size] = torch.from_numpy(
                    images32[i][r:r + size, c:c + size])
        else:  # the patch replicated to three channels, as the official code
            batch = torch.empty((len(chunk), 3, size, size), dtype=torch.float32)
            for j, (i, _, r, c) in enumerate(chunk):
                batch[j, :] = torch.from_numpy(images32[i][r:r + size, c:c + size])
        return batch.numpy()

    @torch.inference_mode()
    def classify(self, batch: np.ndarray) -> np.ndarray:
        """Softmax outputs (N, classes) float32 of one :meth:`input_batch` (wherever it was built)."""
        if not batch.flags.writeable:  # e.g. read zero-copy from Ray's object store; torch wants a writable array
            batch = batch.copy()
        inputs = torch.from_numpy(batch)
        if self.fast:
            logits = self.fused(inputs.to(self.device, self.dtype))
        else:
            logits = self.model(inputs.to(self.device))
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def heatmaps(self, images: Sequence[np.ndarray], grids: Sequence[PatchGrid],
                 names: Sequence[str] | None = None) -> list[Heatmaps]:
        """Heatmaps of several images (raw cropped pixels, in the orientation the grids were drawn for);
        ``names`` label their patch batches for the pool's record."""
        standardized = [standardize_float64(image) for image in images]
        for image, grid in zip(images, grids):
            if tuple(image.shape) != grid.image_shape:
                raise ValueError(f"image of shape {image.shape} does not match its patch grid {grid.image_shape}")
        probabilities = self.patch_probabilities(standardized, grids, names)
        return [Heatmaps(benign=accumulate_heatmap(p[:, BENIGN_CLASS], g),
                         malignant=accumulate_heatmap(p[:, MALIGNANT_CLASS], g), patch_probabilities=p, grid=g)
                for p, g in zip(probabilities, grids)]


def _background_patches(standardized: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
    """Which patches are one constant value (the standardised zero background): a summed-area test."""
    reference = standardized.min()
    outside = np.zeros((standardized.shape[0] + 1, standardized.shape[1] + 1), dtype=np.int64)
    outside[1:, 1:] = (standardized != reference).cumsum(0, dtype=np.int64).cumsum(1)
    r, c = offsets[:, 0], offsets[:, 1]
    counts = outside[r + size, c + size] - outside[r, c + size] - outside[r + size, c] + outside[r, c]
    return counts == 0
