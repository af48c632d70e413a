"""The heatmap stage on generated data: patch grids and their random draws, averaging, the fast classifier."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mammoscreen.models.layers.densenet import DenseNet
from mammoscreen.models.nyu_model.patch_heatmaps import (
    PatchClassifier,
    PatchGrid,
    accumulate_heatmap,
    heatmap_dtype,
    patch_grid,
    plan_patch_grids,
    standardize_float64,
    stride_list,
)

NATIVE_BF16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@pytest.mark.parametrize("length", [256, 257, 300, 326, 396, 801, 1000, 2023, 2974])
def test_strides_cover_the_axis_exactly_and_differ_by_at_most_one(length):
    strides = stride_list(length, random.Random(length))
    assert sum(strides) == length - 256  # the last patch ends flush with the image
    assert all(0 < s <= 70 for s in strides)
    assert max(strides, default=0) - min(strides, default=0) <= 1
    # never fewer patches than the plain stride-70 grid
    assert len(strides) + 1 >= (length - 256) // 70 + 1


def test_an_axis_that_fits_the_grid_draws_no_random_numbers():
    rng = random.Random(5)
    state = rng.getstate()
    assert stride_list(256 + 3 * 70, rng) == [70, 70, 70]
    assert stride_list(256, rng) == []
    assert rng.getstate() == state


def test_shortened_steps_are_chosen_with_random_sample():
    # 2023 rows: 26 patches at stride 70 leave 17 pixels; 27 patches overlap by 53 = 26 * 2 + 1, so every
    # step is 68 and one randomly chosen step 67.
    strides = stride_list(2023, random.Random(0))
    assert len(strides) == 26 and strides.count(67) == 1 and strides.count(68) == 25
    chosen = [stride_list(2023, random.Random(seed)).index(67) for seed in range(40)]
    assert len(set(chosen)) > 10  # the shortened step moves with the seed


def test_image_smaller_than_a_patch_is_an_error():
    with pytest.raises(ValueError, match="shorter than a 256-pixel patch"):
        stride_list(200, random.Random(0))
    grids = plan_patch_grids([("tiny", (200, 900)), ("fine", (600, 600))])
    assert isinstance(grids["tiny"], ValueError) and "tiny" in str(grids["tiny"])
    assert isinstance(grids["fine"], PatchGrid)


def test_patch_order_is_columns_outer_rows_inner():
    grid = PatchGrid((400, 330), (72, 72), (74,), patch_size=256)
    assert grid.offsets().tolist() == [[0, 0], [72, 0], [144, 0], [0, 74], [72, 74], [144, 74]]
    assert len(grid) == 6


def test_rows_are_drawn_before_columns_from_one_stream():
    rng = random.Random(3)
    expected_rows = stride_list(1000, rng)
    expected_cols = stride_list(900, rng)
    grid = patch_grid((1000, 900), random.Random(3))
    assert (list(grid.row_strides), list(grid.col_strides)) == (expected_rows, expected_cols)


def test_per_run_and_per_image_seeding():
    shapes = [("a", (1000, 900)), ("b", (1000, 900)), ("unreadable", None), ("c", (1100, 700))]
    per_run = plan_patch_grids(shapes, seed=7)
    per_image = plan_patch_grids(shapes, seed=7, per_image_seed=True)
    alone = {name: patch_grid(shape, random.Random(7)) for name, shape in shapes if shape is not None}
    assert per_image == alone  # every image starts from the seed
    assert per_run["a"] == alone["a"] and per_run["b"] != alone["b"]  # the stream continues across images
    assert "unreadable" not in per_run
    # an unreadable image draws nothing: c follows b directly
    stream = random.Random(7)
    for _, shape in shapes[:2]:
        patch_grid(shape, stream)
    assert per_run["c"] == patch_grid((1100, 700), stream)


def test_heatmap_is_the_mean_over_covering_patches():
    grid = PatchGrid((10, 7), (3, 3), (3,), patch_size=4)
    values = np.arange(1, len(grid) + 1, dtype=np.float32)
    heatmap = accumulate_heatmap(values, grid)
    expected = np.zeros((10, 7))
    for r in range(10):
        for c in range(7):
            covering = [v for v, (r0, c0) in zip(values, grid.offsets()) if r0 <= r < r0 + 4 and c0 <= c < c0 + 4]
            expected[r, c] = np.mean(covering)
    assert heatmap.dtype == np.float32
    np.testing.assert_allclose(heatmap, expected, rtol=1e-6)


def test_standardisation_is_float64_over_the_whole_image():
    image = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    out = standardize_float64(image)
    assert out.dtype == np.float64
    assert abs(out.mean()) < 1e-12 and out.std() == pytest.approx(1.0)
    assert np.all(standardize_float64(np.zeros((3, 3), np.uint16)) == 0)  # std clamped at 1e-5


@pytest.fixture(scope="module")
def tiny_patch_model():
    torch.manual_seed(0)
    model = DenseNet(blocks=(1, 2), growth_rate=4, init_channels=8, bottleneck_width=2, num_classes=4)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(-1.5, 1.5)
    return model.eval()


def synthetic_crop(shape=(800, 700), seed=0):
    """Textured tissue in the upper left, zero background elsewhere (whole patches of it at the lower right)."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.uint16)
    rows, cols = shape[0] // 2, shape[1] // 2
    image[:rows, :cols] = rng.integers(500, 4000, (rows, cols))
    return image


def test_fast_classifier_gives_the_reference_heatmaps(tiny_patch_model):
    images = [synthetic_crop(), synthetic_crop((600, 500), seed=1)[:, ::-1]]
    grids = [plan_patch_grids([("x", img.shape)])["x"] for img in images]
    slow = PatchClassifier(tiny_patch_model, fast=False).heatmaps(images, grids)
    fast = PatchClassifier(tiny_patch_model, fast=True, batch_size=5).heatmaps(images, grids)
    for s, f, grid in zip(slow, fast, grids):
        assert s.patch_probabilities.shape == (len(grid), 4)
        np.testing.assert_allclose(f.patch_probabilities, s.patch_probabilities, rtol=0, atol=1e-6)
        np.testing.assert_allclose(f.benign, s.benign, rtol=0, atol=1e-6)
        np.testing.assert_allclose(f.malignant, s.malignant, rtol=0, atol=1e-6)
        np.testing.assert_allclose(s.benign, accumulate_heatmap(s.patch_probabilities[:, 1], grid), rtol=0, atol=0)
        np.testing.assert_allclose(s.malignant, accumulate_heatmap(s.patch_probabilities[:, 0], grid), rtol=0, atol=0)
        np.testing.assert_allclose(s.patch_probabilities.sum(1), 1.0, atol=1e-6)


def test_background_patches_are_classified_once(tiny_patch_model):
    image = synthetic_crop()
    grid = plan_patch_grids([("x", image.shape)])["x"]
    classifier = PatchClassifier(tiny_patch_model, fast=True, batch_size=4)
    seen = []
    classify = classifier.classify
    classifier.classify = lambda batch: seen.append(len(batch)) or classify(batch)
    result = classifier.heatmaps([image], [grid])[0]
    offsets = grid.offsets()
    background = np.array([not image[r:r + 256, c:c + 256].any() for r, c in offsets])
    assert background.sum() >= 2
    assert sum(seen) == len(grid) - background.sum() + 1
    assert (result.patch_probabilities[background] == result.patch_probabilities[background][0]).all()


def test_image_must_match_its_grid(tiny_patch_model):
    classifier = PatchClassifier(tiny_patch_model)
    grid = plan_patch_grids([("x", (400, 400))])["x"]
    with pytest.raises(ValueError, match="does not match"):
        classifier.heatmaps([np.zeros((400, 401), np.uint16)], [grid])


def test_heatmap_precision_is_validated():
    assert heatmap_dtype("float32", "cpu") == torch.float32
    with pytest.raises(ValueError, match="unknown heatmap precision 'float16'"):
        heatmap_dtype("float16", "cpu")
    if not NATIVE_BF16:
        with pytest.raises(ValueError, match="no native bfloat16"):
            heatmap_dtype("bfloat16", "cpu")


@pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bfloat16 arithmetic (AVX512-BF16 or AMX)")
def test_bfloat16_patch_classifier_approximates_the_float32_one(tiny_patch_model):
    image = synthetic_crop()
    grid = plan_patch_grids([("x", image.shape)])["x"]
    exact = PatchClassifier(tiny_patch_model, fast=True).heatmaps([image], [grid])[0]
    approx = PatchClassifier(tiny_patch_model, fast=True, precision="bfloat16").heatmaps([image], [grid])[0]
    difference = np.abs(approx.patch_probabilities - exact.patch_probabilities)
    assert approx.patch_probabilities.dtype == np.float32 and approx.benign.dtype == np.float32
    assert difference.max() > 1e-6  # it really ran in bfloat16
    assert difference.max() < 2e-2
    np.testing.assert_allclose(approx.patch_probabilities.sum(1), 1.0, atol=1e-6)  # softmax in float32
    with pytest.raises(ValueError, match="needs the fast patch classifier"):
        PatchClassifier(tiny_patch_model, fast=False, precision="bfloat16")


class _ElsewherePool:
    """A BatchPool standing in for a distributed one: every batch pickled (as it travels), classified in
    reverse order by a copy of the classifier, the results read back read-only (as from an object store)."""

    def __init__(self, other: PatchClassifier):
        self.other, self.labels = other, []

    def map(self, classify, batches, labels):
        import pickle

        self.labels = list(labels)
        shipped = [pickle.dumps(b) for b in batches]
        out = {}
        for i in reversed(range(len(shipped))):
            result = self.other.classify(pickle.loads(shipped[i]))
            result.setflags(write=False)
            out[i] = result
        return [out[i] for i in range(len(shipped))]


def test_patch_batches_classified_elsewhere_give_identical_heatmaps(tiny_patch_model):
    """The contract the Ray engine's patch fan-out relies on: batches built here and classified by another
    classifier (another process's copy of the model), in any order, give bit-identical heatmaps; each batch is
    labelled with the images whose patches it holds."""
    import copy

    images = [synthetic_crop((600, 500), seed=1), synthetic_crop((400, 700), seed=2)]
    grids = [plan_patch_grids([("x", img.shape)])["x"] for img in images]
    here = PatchClassifier(tiny_patch_model, fast=True, batch_size=7).heatmaps(images, grids)
    classifier = PatchClassifier(tiny_patch_model, fast=True, batch_size=7)
    classifier.pool = pool = _ElsewherePool(PatchClassifier(copy.deepcopy(tiny_patch_model), fast=True, batch_size=7))
    elsewhere = classifier.heatmaps(images, grids, names=["a", "b"])
    for h, e in zip(here, elsewhere):
        assert np.array_equal(h.patch_probabilities, e.patch_probabilities)
        assert np.array_equal(h.benign, e.benign) and np.array_equal(h.malignant, e.malignant)
    assert len(pool.labels) >= 3 and pool.labels[0] == ("a",) and pool.labels[-1] == ("b",)
    assert ("a", "b") in pool.labels  # a batch across the two images names both
