"""The DMV-CNN models in the prediction engine: ``nyu_model`` (exam level) and ``nyu_model_single`` (image level).

Both reproduce the meta-repository's runs of nyukat/breast_cancer_classifier, including the random
input windows it predicts on (``--use-augmentation``): per view, a window of the view angle's size (CC
2677x1942, MLO 2974x1748) around ``best_center`` whose position (up to 100 px) and border sizes (up to
100 px) are jittered with ``numpy.random.RandomState`` draws, then resized back bicubically and
standardised. The seed (default 0) is the official one, so the default run gives the official numbers.

nyu_model (``run_model.py``): one ``RandomState(seed)`` for the whole run; exams in list order, views
L-CC, R-CC, L-MLO, R-MLO; per view ``randint(0, n_images)`` picks the image (no draw for one image),
then 6 uniforms for the window. Each exam's random state is computed up front from the exam list, so an
exam's windows do not depend on which other exams fail or were already finished. Exams lacking a view
are skipped and consume no draws (the official script stops at them).

nyu_model_single (the meta-repository's ``generate_predictions.py``): per exam, views in the order L-CC,
L-MLO, R-CC, R-MLO, ONE image per view, chosen with a run-wide ``RandomState(seed).randint`` (a quirk:
other images of the view are not predicted; ``every_image=True`` predicts all); each image gets a fresh
``RandomState(seed)``, so all images share the same draws.

Image+heatmaps variants add the benign and malignant patch-classifier heatmaps
(:mod:`mammoscreen.models.nyu_model.patch_heatmaps`) as input channels 2 and 3, cut by the same window (resized together
with the image) and not standardised. nyu_model computes them on the mirrored image with one
:mod:`random` stream for the run; nyu_model_single on the unmirrored image (the official single-image
stage is given only the view angle, so right views are not mirrored for the patches) with
``random.seed(seed)`` per image, then mirrors them with the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ...core.device import for_device, full_fp32, resolve_device
from ...core.files import sha256_file
from ...core.paths import output_path
from ...data.exams import VIEWS, Exam, ImageRecord, iter_images, missing_views, view_angle
from ...data.images import image_path, read_mammogram, write_png
from ...core.memory import keep_freed_memory
from ...preprocess.windows import WindowGeometry, extract_window, flip_to_face_right, standardize, window_geometry
from ..interfaces import ExamPrediction, ExamPredictor, ImagePrediction, Predictor
from ..layers.densenet import DenseNet, densenet121
from ..options import ModelOptions
from ..preprocessing import Preprocessing
from ..registry import META_REPOSITORY_VIEW_ORDER, ModelSpec, WeightFile, register_model
from ..weights import WeightsError, load_checkpoint, load_state_dict_into, resolve_weight_path
from .modeling import DMV_WINDOWS, LABELS, ImageWiseDMV, ViewWiseDMV
from .patch_heatmaps import BatchPool, Heatmaps, PatchClassifier, PatchGrid, heatmap_dtype, plan_patch_grids

IMAGE_ONLY = "image_only"
IMAGE_HEATMAPS = "image_heatmaps"
PATCH_CLASSIFIER = "patch_classifier"  # key of the patch classifier's weight file in the specs

MAX_CROP_NOISE = (100, 100)
MAX_CROP_SIZE_NOISE = 100
SINGLE_VIEW_ORDER = META_REPOSITORY_VIEW_ORDER
"""Image order of the meta-repository's nyu_model_single script (within each exam)."""


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------

def _wrapped_state_dict(path: Path) -> dict[str, torch.Tensor]:
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        keys = sorted(map(str, checkpoint))[:5] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise WeightsError(f"{path}: expected the official DMV-CNN format, a dict with key 'model' holding the state "
                           f"dict; found {keys}")
    state = checkpoint["model"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: checkpoint['model'] is not a state dict")
    # The aliases must hold the same weights as the networks they name; anything else is not this model.
    for alias, target in (("l_cc", "cc"), ("r_cc", "cc"), ("l_mlo", "mlo"), ("r_mlo", "mlo")):
        prefix = f"four_view_resnet.{alias}."
        for key, value in state.items():
            if key.startswith(prefix):
                original = state.get(f"four_view_resnet.{target}." + key[len(prefix):])
                if original is None or not torch.equal(original, value):
                    raise WeightsError(f"{path}: {key} differs from the {target} network it aliases")
    return state


def _input_channels(state: dict[str, torch.Tensor], path: Path) -> int:
    key = "four_view_resnet.cc.first_conv.weight"
    if key not in state:
        raise WeightsError(f"{path}: no {key}; is this a DMV-CNN checkpoint?")
    return int(state[key].shape[1])


def _load_dmv(path: str | Path, network: type[ViewWiseDMV] | type[ImageWiseDMV]) -> Any:
    path = Path(path)
    state = _wrapped_state_dict(path)
    model = network(_input_channels(state, path))
    load_state_dict_into(model, state, source=str(path))
    return model.eval()


def load_view_wise(path: str | Path) -> ViewWiseDMV:
    """The view-wise DMV-CNN (nyu_model) from an official checkpoint, in eval mode."""
    return _load_dmv(path, ViewWiseDMV)


def load_image_wise(path: str | Path) -> ImageWiseDMV:
    """The four-head image-wise DMV-CNN (nyu_model_single) from an official checkpoint, in eval mode."""
    return _load_dmv(path, ImageWiseDMV)


def load_patch_classifier(path: str | Path) -> DenseNet:
    """The DenseNet-121 patch classifier from its official checkpoint (a plain torchvision state dict)."""
    path = Path(path)
    state = load_checkpoint(path)
    if not isinstance(state, dict) or "classifier.weight" not in state:
        raise WeightsError(f"{path}: expected the patch classifier's state dict (torchvision DenseNet-121 layout, "
                           "with classifier.weight)")
    model = densenet121(num_classes=int(state["classifier.weight"].shape[0]))
    load_state_dict_into(model, state, source=str(path))
    return model.eval()


# ----------------------------------------------------------------------------------------------
# Shared preprocessing
# ----------------------------------------------------------------------------------------------

def image_shape_from_header(path: Path) -> tuple[int, int] | None:
    """(rows, cols) of a PNG without decoding it; None if it cannot be opened."""
    try:
        with Image.open(path) as img:
            width, height = img.size
        return height, width
    except (OSError, ValueError):
        return None


def best_center_of(exam: Exam, view: str, index: int, name: str) -> tuple[int, int]:
    try:
        return tuple(exam.image_metadata["best_center"][view][index])  # type: ignore[return-value]
    except (KeyError, IndexError):
        raise ValueError(f"image {name!r} has no best_center: run 'mammoscreen centers' with the DMV-CNN windows "
                         "(CC 2677x1942, MLO 2974x1748), or 'mammoscreen run', which does every stage") from None


def noisy_geometry(shape: tuple[int, int], view: str, center: tuple[int, int],
                   rng: np.random.RandomState) -> WindowGeometry:
    """The official augmentation window of one view (6 draws from ``rng``)."""
    return window_geometry(shape, DMV_WINDOWS[view_angle(view)], center, view, rng=rng,
                           max_crop_noise=MAX_CROP_NOISE, max_crop_size_noise=MAX_CROP_SIZE_NOISE)


def window_input(image: np.ndarray, heatmaps: tuple[np.ndarray, np.ndarray] | None, geometry: WindowGeometry,
                 view: str) -> np.ndarray:
    """(H, W, C) network input: the image window standardised, heatmap windows (benign, malignant) as they are.

    ``image`` and the heatmaps are in the mirrored (facing right) orientation; all channels are cut and
    resized together, as the official code does.
    """
    window = DMV_WINDOWS[view_angle(view)]
    if heatmaps is None:
        return standardize(extract_window(image, geometry, window))[:, :, None]
    joint = np.stack([image, heatmaps[0], heatmaps[1]], axis=2)
    out = extract_window(joint, geometry, window)
    out[:, :, 0] = standardize(out[:, :, 0])
    return out


def to_batch(inputs: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """A (N, C, H, W) tensor from (H, W, C) arrays, as the official ``permute(0, 3, 1, 2)`` of an NHWC batch.

    The official batch keeps that channels-last memory layout, which makes oneDNN choose other kernels
    than for a contiguous tensor; keeping it keeps our numbers closest to the official ones (and it is
    cuDNN's fast layout). On CUDA the host batch goes through pinned memory with a non-blocking copy.
    """
    x = torch.from_numpy(np.stack(inputs))
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    return x.permute(0, 3, 1, 2).to(device)


def _heatmap_png(heatmap: np.ndarray) -> np.ndarray:
    return np.round(np.clip(heatmap, 0.0, 1.0) * 65535.0).astype(np.uint16)


def write_heatmap_pngs(directory: Path, name: str, benign: np.ndarray, malignant: np.ndarray) -> None:
    """16-bit PNGs (probability x 65535) in ``directory/heatmap_{benign,malignant}/<name>.png``."""
    write_png(output_path(directory, "heatmap_benign", f"{name}.png"), _heatmap_png(benign))
    write_png(output_path(directory, "heatmap_malignant", f"{name}.png"), _heatmap_png(malignant))


@dataclass
class _HeatmapSettings:
    classifier: PatchClassifier
    weights: Path
    sha256: str
    png_dir: Path | None = None

    @property
    def precision(self) -> str:
        return self.classifier.precision


class _DMVPredictorBase:
    """What both DMV predictors hold: the network on its device, its weights, the variant, the seed and number of
    random windows (epochs), and the heatmap settings of the image+heatmaps variant, whose patch batches can be
    classified elsewhere (:meth:`share_patches`)."""

    spec: ModelSpec

    def _load(self, model: torch.nn.Module, weights: Path, variant: str, device: str | torch.device, seed: int,
              epochs: int, heatmaps: _HeatmapSettings | None) -> None:
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # the stem's large activations without page faults: see mammoscreen.core.memory
        self.model = for_device(model, self.device)  # channels_last on CUDA; unchanged on the CPU
        self.weights, self.variant, self.seed, self.epochs = Path(weights), variant, seed, epochs
        self.heatmap_settings = heatmaps
        self._sha = sha256_file(self.weights)

    def _more_provenance(self) -> dict[str, Any]:
        return {}

    def provenance(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.spec.name, "variant": self.variant, "seed": self.seed,
                               "epochs": self.epochs, "weights": [{"path": str(self.weights), "sha256": self._sha}],
                               **self._more_provenance()}
        if self.heatmap_settings is not None:
            out["patch_weights"] = {"path": str(self.heatmap_settings.weights),
                                    "sha256": self.heatmap_settings.sha256}
            out["heatmap_precision"] = self.heatmap_settings.precision
        return out

    @property
    def shares_patches(self) -> bool:
        """Whether this predictor has heatmap patch batches to share (the image+heatmaps variant)."""
        return self.heatmap_settings is not None

    def share_patches(self, pool: BatchPool) -> Callable[[np.ndarray], np.ndarray] | None:
        """Hand the heatmap patch batches to ``pool`` (e.g. a distributed engine's workers); returns the function
        that classifies one batch here, for the batches others hand to this predictor - None without heatmaps."""
        if self.heatmap_settings is None:
            return None
        self.heatmap_settings.classifier.pool = pool
        return self.heatmap_settings.classifier.classify


# ----------------------------------------------------------------------------------------------
# nyu_model: the view-wise exam-level model
# ----------------------------------------------------------------------------------------------

@dataclass
class _ViewSample:
    epoch: int
    view: str
    name: str
    geometry: WindowGeometry
    window: np.ndarray | None = None  # image-only variant: the finished input


@dataclass
class _ExamInput:
    exam_index: int
    exam: Exam
    images: dict[str, np.ndarray]  # name -> cropped pixels (original orientation)
    views: dict[str, str]  # name -> view
    samples: list[_ViewSample]


class ViewWiseDMVPredictor(_DMVPredictorBase, ExamPredictor):
    """nyu_model: one breast-level prediction per exam from its four views (see the module docstring)."""

    required_views = VIEWS

    def __init__(self, model: ViewWiseDMV, weights: Path, variant: str, device: str | torch.device = "auto",
                 seed: int = 0, epochs: int = 1, heatmaps: _HeatmapSettings | None = None):
        self.spec = NYU_MODEL_SPEC
        self._load(model, weights, variant, device, seed, epochs, heatmaps)
        self._exam_states: dict[int, tuple] = {}
        self._grids: dict[str, PatchGrid | Exception] = {}

    def plan(self, exams: Sequence[Exam], images_dir: Path) -> None:
        """Lay out the official random streams of the whole run (windows per exam; patch grids per image)."""
        rng = np.random.RandomState(self.seed)
        self._exam_states = {}
        for i, exam in enumerate(exams):
            if missing_views(exam, self.required_views):
                continue
            self._exam_states[i] = rng.get_state()
            for _ in range(self.epochs):
                for view in VIEWS:
                    rng.randint(low=0, high=len(exam.images[view]))
                    rng.uniform(low=-1.0, high=1.0, size=2)  # position noise (window_geometry's first draw)
                    rng.uniform(low=-1.0, high=1.0, size=4)  # border noise
        if self.heatmap_settings is not None:
            # The official heatmap stage walks every image of the list, exam by exam, views in VIEWS order.
            shapes = [(name, image_shape_from_header(image_path(images_dir, name)))
                      for exam in exams for view in VIEWS for name in exam.images.get(view, [])]
            self._grids = plan_patch_grids(shapes, self.seed)

    def prepare(self, exam_index: int, exam: Exam, images_dir: Path) -> _ExamInput:
        if exam_index not in self._exam_states:
            raise RuntimeError("plan() must be called with the exam list before prepare()")
        rng = np.random.RandomState()
        rng.set_state(self._exam_states[exam_index])
        images: dict[str, np.ndarray] = {}
        views: dict[str, str] = {}
        samples = []
        for epoch in range(self.epochs):
            for view in VIEWS:
                names = exam.images[view]
                k = int(rng.randint(low=0, high=len(names)))
                name = names[k]
                if name not in images:
                    images[name] = read_mammogram(image_path(images_dir, name))
                    views[name] = view
                image = flip_to_face_right(images[name], view, exam.horizontal_flip)
                geometry = noisy_geometry(image.shape, view, best_center_of(exam, view, k, name), rng)
                sample = _ViewSample(epoch, view, name, geometry)
                if self.heatmap_settings is None:
                    sample.window = window_input(image.astype(np.float32), None, geometry, view)
                samples.append(sample)
        return _ExamInput(exam_index, exam, images, views, samples)

    def _heatmaps(self, prepared: _ExamInput) -> dict[str, Heatmaps]:
        assert self.heatmap_settings is not None
        names = list(prepared.images)
        grids = []
        for name in names:
            grid = self._grids.get(name)
            if grid is None:
                raise ValueError(f"{name}: no patch grid (the image was not readable when the run was planned)")
            if isinstance(grid, Exception):
                raise grid
            grids.append(grid)
        flip = prepared.exam.horizontal_flip
        oriented = [flip_to_face_right(prepared.images[n], prepared.views[n], flip) for n in names]
        return dict(zip(names, self.heatmap_settings.classifier.heatmaps(oriented, grids, names)))

    @torch.inference_mode()
    def predict_exam(self, prepared: _ExamInput) -> ExamPrediction:
        with full_fp32(self.device):  # no TF32 on GPUs: the official numbers are float32
            return self._predict_exam(prepared)

    def _predict_exam(self, prepared: _ExamInput) -> ExamPrediction:
        heatmaps = self._heatmaps(prepared) if self.heatmap_settings is not None else {}
        flip = prepared.exam.horizontal_flip
        outputs = []
        for epoch in range(self.epochs):
            pooled = {}
            for sample in (s for s in prepared.samples if s.epoch == epoch):
                window = sample.window
                if window is None:
                    image = flip_to_face_right(prepared.images[sample.name], sample.view, flip).astype(np.float32)
                    hm = heatmaps[sample.name]
                    window = window_input(image, (hm.benign, hm.malignant), sample.geometry, sample.view)
                    window = np.ascontiguousarray(window)
                pooled[sample.view] = self.model.pooled_features(to_batch([window], self.device), sample.view)
            outputs.append(self.model.heads(pooled))
        prediction = np.mean([o.prediction[0].double().cpu().numpy() for o in outputs], axis=0)

        maps: dict[str, np.ndarray] = {
            "prediction": prediction.astype(np.float32),
            "logp_CC": np.stack([o.logp_cc[0].float().cpu().numpy() for o in outputs]),
            "logp_MLO": np.stack([o.logp_mlo[0].float().cpu().numpy() for o in outputs]),
        }
        for sample, out in ((s, outputs[s.epoch]) for s in prepared.samples):
            key = sample.view.replace("-", "_")
            suffix = f"_{key}" if self.epochs == 1 else f"_{key}_epoch{sample.epoch}"
            g = sample.geometry
            maps["image" + suffix] = np.array(sample.name)
            maps["pooled" + suffix] = out.pooled[sample.view][0].float().cpu().numpy()
            maps["borders" + suffix] = np.array(g.borders, dtype=np.int64)
            maps["padding" + suffix] = np.array((g.pad_top, g.pad_bottom, g.pad_right), dtype=np.int64)
        for name, hm in heatmaps.items():
            view = prepared.views[name]
            # Saved like the official heatmap files: in the original (unmirrored) orientation.
            benign = np.ascontiguousarray(flip_to_face_right(hm.benign, view, flip))
            malignant = np.ascontiguousarray(flip_to_face_right(hm.malignant, view, flip))
            maps[f"heatmap_benign_{name}"], maps[f"heatmap_malignant_{name}"] = benign, malignant
            maps[f"patch_probabilities_{name}"] = hm.patch_probabilities
            maps[f"patch_row_strides_{name}"] = np.array(hm.grid.row_strides, dtype=np.int64)
            maps[f"patch_col_strides_{name}"] = np.array(hm.grid.col_strides, dtype=np.int64)
            if self.heatmap_settings.png_dir is not None:
                write_heatmap_pngs(self.heatmap_settings.png_dir, name, benign, malignant)
        return ExamPrediction(values={label: float(v) for label, v in zip(LABELS, prediction)}, maps=maps)


# ----------------------------------------------------------------------------------------------
# nyu_model_single: the image-wise model, one image at a time
# ----------------------------------------------------------------------------------------------

@dataclass
class _ImageInput:
    record: ImageRecord
    image: np.ndarray  # cropped pixels, original orientation
    geometries: list[WindowGeometry]
    windows: list[np.ndarray] = field(default_factory=list)  # image-only variant


class ImageWiseDMVPredictor(_DMVPredictorBase, Predictor):
    """nyu_model_single: a malignancy (and benign) probability per image (see the module docstring)."""

    def __init__(self, model: ImageWiseDMV, weights: Path, variant: str, device: str | torch.device = "auto",
                 seed: int = 0, epochs: int = 1, heatmaps: _HeatmapSettings | None = None, every_image: bool = False):
        self.spec = NYU_MODEL_SINGLE_SPEC
        self._load(model, weights, variant, device, seed, epochs, heatmaps)
        self.every_image = every_image

    def _more_provenance(self) -> dict[str, Any]:
        return {"every_image": self.every_image}

    def select_images(self, exams: Sequence[Exam]) -> list[ImageRecord]:
        """Per exam, views L-CC, L-MLO, R-CC, R-MLO; one image per view drawn as the official script does."""
        by_view: dict[tuple[int, str], list[ImageRecord]] = {}
        for record in iter_images(exams):
            by_view.setdefault((record.exam_index, record.view), []).append(record)
        rng = np.random.RandomState(self.seed)
        selected = []
        for i in range(len(exams)):
            for view in SINGLE_VIEW_ORDER:
                records = by_view.get((i, view), [])
                if not records:
                    continue
                if self.every_image:
                    selected += records
                else:
                    selected.append(records[int(rng.randint(low=0, high=len(records)))])
        return selected

    def prepare(self, record: ImageRecord, images_dir: Path) -> _ImageInput:
        if "best_center" not in record.metadata:
            raise ValueError(f"image {record.name!r} has no best_center: run 'mammoscreen centers' with the DMV-CNN "
                             "windows (CC 2677x1942, MLO 2974x1748), or 'mammoscreen run', which does every stage")
        image = read_mammogram(image_path(images_dir, record.name))
        flipped = flip_to_face_right(image, record.view, record.horizontal_flip)
        rng = np.random.RandomState(self.seed)  # a fresh stream per image, as the official script
        geometries = [noisy_geometry(flipped.shape, record.view, record.metadata["best_center"], rng)
                      for _ in range(self.epochs)]
        prepared = _ImageInput(record, image, geometries)
        if self.heatmap_settings is None:
            flipped32 = flipped.astype(np.float32)
            prepared.windows = [window_input(flipped32, None, g, record.view) for g in geometries]
        return prepared

    def _heatmaps(self, prepared: Sequence[_ImageInput]) -> list[Heatmaps]:
        assert self.heatmap_settings is not None
        # random.seed(seed) per image; patches from the unmirrored image (the official quirk).
        planned = plan_patch_grids([(str(j), p.image.shape) for j, p in enumerate(prepared)], self.seed,
                                   per_image_seed=True)
        grids = []
        for j in range(len(prepared)):
            grid = planned[str(j)]
            if isinstance(grid, Exception):
                raise ValueError(f"{prepared[j].record.name}: {grid}")
            grids.append(grid)
        return self.heatmap_settings.classifier.heatmaps([p.image for p in prepared], grids,
                                                     [p.record.name for p in prepared])

    @torch.inference_mode()
    def predict_batch(self, prepared: Sequence[_ImageInput]) -> list[ImagePrediction]:
        with full_fp32(self.device):  # no TF32 on GPUs: the official numbers are float32
            return self._predict_batch(prepared)

    def _predict_batch(self, prepared: Sequence[_ImageInput]) -> list[ImagePrediction]:
        heatmaps = self._heatmaps(prepared) if self.heatmap_settings is not None else [None] * len(prepared)
        results = []
        for p, hm in zip(prepared, heatmaps):
            r = p.record
            windows = p.windows
            if hm is not None:
                image = flip_to_face_right(p.image, r.view, r.horizontal_flip).astype(np.float32)
                channels = (flip_to_face_right(hm.benign, r.view, r.horizontal_flip),
                            flip_to_face_right(hm.malignant, r.view, r.horizontal_flip))
                windows = [np.ascontiguousarray(window_input(image, channels, g, r.view)) for g in p.geometries]
            outputs = [self.model(to_batch([w], self.device), r.view) for w in windows]
            probabilities = np.stack([o.probabilities[0].float().cpu().numpy() for o in outputs]).mean(axis=0)
            maps: dict[str, np.ndarray] = {
                "probabilities": probabilities.astype(np.float32),  # [benign, malignant]
                "logp": np.stack([o.logp[0].float().cpu().numpy() for o in outputs]),
                "pooled": np.stack([o.pooled[0].float().cpu().numpy() for o in outputs]),
                "borders": np.array([g.borders for g in p.geometries], dtype=np.int64),
                "padding": np.array([(g.pad_top, g.pad_bottom, g.pad_right) for g in p.geometries], dtype=np.int64),
                "cropped_shape": np.array(p.image.shape, dtype=np.int64),
            }
            if hm is not None:
                maps["heatmap_benign"], maps["heatmap_malignant"] = hm.benign, hm.malignant  # original orientation
                maps["patch_probabilities"] = hm.patch_probabilities
                maps["patch_row_strides"] = np.array(hm.grid.row_strides, dtype=np.int64)
                maps["patch_col_strides"] = np.array(hm.grid.col_strides, dtype=np.int64)
                if self.heatmap_settings.png_dir is not None:
                    write_heatmap_pngs(self.heatmap_settings.png_dir, r.name, hm.benign, hm.malignant)
            results.append(ImagePrediction(
                values={"benign_pred": float(probabilities[0]), "malignant_pred": float(probabilities[1])},
                maps=maps))
        return results


# ----------------------------------------------------------------------------------------------
# Building from the registry
# ----------------------------------------------------------------------------------------------

def _heatmap_settings(spec: ModelSpec, patch_weights: Any, device: torch.device, batch_size: int, fast: bool,
                      png_dir: str | Path | None, allow_download: bool, precision: str = "float32"
                      ) -> _HeatmapSettings:
    heatmap_dtype(precision, device)  # refuse an unsupported precision before any download
    path = resolve_weight_path(spec, patch_weights, PATCH_CLASSIFIER, allow_download=allow_download)
    classifier = PatchClassifier(load_patch_classifier(path), device, batch_size=batch_size, fast=fast,
                                 precision=precision)
    return _HeatmapSettings(classifier, path, sha256_file(path), Path(png_dir) if png_dir is not None else None)


def _check_channels(model: torch.nn.Module, variant: str, path: Path) -> None:
    expected = 3 if variant == IMAGE_HEATMAPS else 1
    if model.in_channels != expected:
        hint = ("it takes image+heatmaps input: add --heatmaps --patch-weights PATH" if model.in_channels == 3
                else "it takes images only: drop --heatmaps")
        raise WeightsError(f"{path}: a {model.in_channels}-channel checkpoint, but the {variant} variant needs "
                           f"{expected}; {hint}")


@dataclass(frozen=True)
class DMVOptions(ModelOptions):
    """Options of nyu_model (and nyu_model_single, which adds ``every_image``).

    ``patch_weights`` (the patch classifier: file, directory or 'official') selects the image+heatmaps
    variant; ``seed`` and ``epochs`` the random input windows (and heatmap patch grids); ``heatmap_precision``
    ``float32`` (official numbers) or the opt-in approximation ``bfloat16`` (see
    :func:`~mammoscreen.models.nyu_model.patch_heatmaps.heatmap_dtype`).
    """

    patch_weights: str | Path | None = None
    seed: int = 0
    epochs: int = 1
    heatmap_batch_size: int = 32
    fast_heatmaps: bool = True
    heatmap_png_dir: Path | None = None
    heatmap_precision: str = "float32"

    def resolve_variant(self, spec: Any, variant: str | None) -> str:
        if variant is None:
            variant = IMAGE_HEATMAPS if self.patch_weights is not None else IMAGE_ONLY
        variant = {"image": IMAGE_ONLY, "image+heatmaps": IMAGE_HEATMAPS, "heatmaps": IMAGE_HEATMAPS}.get(variant,
                                                                                                        variant)
        if variant not in spec.variants:
            raise ValueError(f"unknown {spec.name} variant {variant!r}; choose {' or '.join(spec.variants)}")
        if variant == IMAGE_HEATMAPS and self.patch_weights is None:
            raise ValueError(f"the image+heatmaps {spec.name} needs the patch classifier: pass --patch-weights "
                             "(sample_patch_model.p, a directory holding it, or 'official')")
        if variant == IMAGE_ONLY and self.patch_weights is not None:
            raise ValueError("--patch-weights is used only by the image+heatmaps variant (add --heatmaps)")
        if variant != IMAGE_HEATMAPS and self.heatmap_precision != "float32":
            raise ValueError("--heatmap-precision applies only to the image+heatmaps variant (add --heatmaps)")
        return variant


@dataclass(frozen=True)
class DMVSingleOptions(DMVOptions):
    """nyu_model_single's options: those of nyu_model, and ``every_image`` (predict every image of a view, not
    one drawn at random as the official script does)."""

    every_image: bool = False


def _heatmaps_of(spec: ModelSpec, variant: str, device: torch.device, options: DMVOptions,
                 allow_download: bool) -> _HeatmapSettings | None:
    if variant != IMAGE_HEATMAPS:
        return None
    return _heatmap_settings(spec, options.patch_weights, device, options.heatmap_batch_size, options.fast_heatmaps,
                             options.heatmap_png_dir, allow_download, options.heatmap_precision)


def _load_nyu_model(paths: Sequence[Path], variant: str, device: str, options: DMVOptions) -> ViewWiseDMVPredictor:
    model = load_view_wise(paths[0])
    _check_channels(model, variant, paths[0])
    dev = resolve_device(device)
    heatmaps = _heatmaps_of(NYU_MODEL_SPEC, variant, dev, options, allow_download=True)
    return ViewWiseDMVPredictor(model, paths[0], variant, dev, options.seed, options.epochs, heatmaps)


def _load_nyu_model_single(paths: Sequence[Path], variant: str, device: str,
                           options: DMVSingleOptions) -> ImageWiseDMVPredictor:
    model = load_image_wise(paths[0])
    _check_channels(model, variant, paths[0])
    dev = resolve_device(device)
    heatmaps = _heatmaps_of(NYU_MODEL_SINGLE_SPEC, variant, dev, options, allow_download=True)
    return ImageWiseDMVPredictor(model, paths[0], variant, dev, options.seed, options.epochs, heatmaps,
                                 options.every_image)


def build_nyu_model(weights: str | Path, variant: str | None = None, device: str = "auto", *,
                    allow_download: bool = True, **options: Any) -> ViewWiseDMVPredictor:
    """A nyu_model predictor (:func:`~mammoscreen.models.build_predictor`; ``options``: :class:`DMVOptions`).
    ``weights``: checkpoint file, directory with the official file names, 'official'."""
    from ..factory import PredictorRequest, build_predictor

    return build_predictor(PredictorRequest("nyu_model", weights, variant, device, options,  # type: ignore
                                            allow_download))


def build_nyu_model_single(weights: str | Path, variant: str | None = None, device: str = "auto", *,
                           allow_download: bool = True, **options: Any) -> ImageWiseDMVPredictor:
    """A nyu_model_single predictor (arguments as :func:`build_nyu_model`; ``options``: :class:`DMVSingleOptions`)."""
    from ..factory import PredictorRequest, build_predictor

    return build_predictor(PredictorRequest("nyu_model_single", weights, variant, device, options,  # type: ignore
                                            allow_download))


_MODELS_URL = "https://github.com/nyukat/breast_cancer_classifier/raw/master/models/"
_LICENSE = "AGPL-3.0 (released in the nyukat/breast_cancer_classifier repository)"
_PAPER = ("Wu N, Phang J, Park J, et al. Deep Neural Networks Improve Radiologists' Performance in Breast Cancer "
          "Screening. IEEE Transactions on Medical Imaging 2020;39(4):1184-1194.")
_PATCH_FILE = WeightFile("sample_patch_model.p", _MODELS_URL + "sample_patch_model.p", None, None, _LICENSE)
PREPROCESSING = Preprocessing(source="cropped", unit="exam", windows=DMV_WINDOWS, flip="face right",
                              window_shift=MAX_CROP_NOISE, window_size_noise=MAX_CROP_SIZE_NOISE, seed=0,
                              resize_back="bicubic", standardisation="per image",
                              heatmaps=("benign", "malignant"), heatmaps_variant=IMAGE_HEATMAPS)
SINGLE_PREPROCESSING = replace(PREPROCESSING, unit="image")

NYU_MODEL_SPEC = register_model(ModelSpec(
    name="nyu_model",
    title="DMV-CNN, view-wise four-view model (breast level)",
    paper=_PAPER,
    license=_LICENSE,
    output_level="breast",
    prediction_columns=LABELS,
    preprocessing=PREPROCESSING,
    options=DMVOptions,
    weights={IMAGE_ONLY: WeightFile("sample_image_model.p", _MODELS_URL + "sample_image_model.p", None, None,
                                    _LICENSE),
             IMAGE_HEATMAPS: WeightFile("sample_imageheatmaps_model.p", _MODELS_URL + "sample_imageheatmaps_model.p",
                                        None, None, _LICENSE),
             PATCH_CLASSIFIER: _PATCH_FILE},
    default_variant=IMAGE_ONLY,
    variants=(IMAGE_ONLY, IMAGE_HEATMAPS),
    build=_load_nyu_model,
    extra={"seed": 0, "epochs": 1, "max_crop_noise": MAX_CROP_NOISE, "max_crop_size_noise": MAX_CROP_SIZE_NOISE,
           "patch_size": 256, "patch_stride": 70},
))

NYU_MODEL_SINGLE_SPEC = register_model(ModelSpec(
    name="nyu_model_single",
    title="DMV-CNN, image-wise single-image model (image level)",
    paper=_PAPER,
    license=_LICENSE,
    output_level="image",
    prediction_columns=("malignant_pred",),
    preprocessing=SINGLE_PREPROCESSING,
    options=DMVSingleOptions,
    weights={IMAGE_ONLY: WeightFile("ImageOnly__ModeImage_weights.p", _MODELS_URL + "ImageOnly__ModeImage_weights.p",
                                    None, None, _LICENSE),
             IMAGE_HEATMAPS: WeightFile("ImageHeatmaps__ModeImage_weights.p",
                                        _MODELS_URL + "ImageHeatmaps__ModeImage_weights.p", None, None, _LICENSE),
             PATCH_CLASSIFIER: _PATCH_FILE},
    default_variant=IMAGE_ONLY,
    variants=(IMAGE_ONLY, IMAGE_HEATMAPS),
    build=_load_nyu_model_single,
    csv_view_order=SINGLE_VIEW_ORDER,
    # The meta-repository writes this model's CSV with pandas' index: ",image_index,malignant_pred,malignant_label".
    extra={"seed": 0, "epochs": 1, "csv_index_column": True, "max_crop_noise": MAX_CROP_NOISE,
           "max_crop_size_noise": MAX_CROP_SIZE_NOISE, "patch_size": 256, "patch_stride": 70},
))

__all__ = ["DMVOptions", "DMVSingleOptions", "ImageWiseDMVPredictor", "NYU_MODEL_SINGLE_SPEC", "NYU_MODEL_SPEC",
           "ViewWiseDMVPredictor", "build_nyu_model", "build_nyu_model_single", "load_image_wise",
           "load_patch_classifier", "load_view_wise"]
