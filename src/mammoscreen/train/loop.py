"""The GMIC training loop: Adam on the paper's objective, validation AUROC each epoch, resumable checkpoints.

Output directory::

    checkpoint.pt        everything needed to resume (model, optimizer, RNG, log, best score), every epoch
    best_model.p/.json   the best epoch's weights (official GMIC layout) and architecture sidecar
    last_model.p/.json   the last finished epoch's weights
    training_log.csv     one row per epoch: losses, validation AUROC (empty when undefined), timing
    training_log.json    the same plus the run's settings
    curves.png           loss and AUROC curves

Every file is written atomically after each epoch, so an interrupted run loses at most the epoch in
progress; ``resume=True`` continues after the last finished epoch. Image order and augmentation of an
epoch depend only on (seed, epoch), so a resumed run produces the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..core.checkpoints import CheckpointError, load_torch
from ..core.device import resolve_device
from ..core.files import sha256_file, write_json_atomic, write_text_atomic
from ..data.exam_fingerprint import exam_list_fingerprint
from ..data.exams import Exam, load_exam_list
from ..evaluate.metrics import roc_auc
from ..models.gmic.modeling import GMIC, GMICConfig
from .batches import epoch_batches, smallest_batch, why_one_image_is_too_few
from .checkpoint import load_initial_weights, save_gmic_weights, save_torch_atomic
from .configs import augmentation_noise, config_name
from .data import GMICImages, LabelledImage, labelled_images
from .losses import gmic_loss
from .sampler import epoch_indices

CHECKPOINT = "checkpoint.pt"
BEST_MODEL = "best_model.p"
LAST_MODEL = "last_model.p"
LOG_CSV = "training_log.csv"
LOG_JSON = "training_log.json"
CURVES_PNG = "curves.png"

SELECT_METRICS = ("auroc_mean", "malignant_auroc", "val_loss")
LOG_COLUMNS = ("epoch", "train_loss", "train_global_bce", "train_local_bce", "train_fusion_bce", "train_saliency_l1",
               "val_loss", "val_auroc_benign", "val_auroc_malignant", "train_images", "seconds",
               "images_per_second", "best")
TIMING_COLUMNS = ("seconds", "images_per_second")
"""Log columns that depend on the machine, not on the computation."""
IN_MEMORY = "in-memory"
"""How the settings name an exam list given in memory (followed by its content fingerprint; older versions stored
this word alone)."""


class TrainingError(ValueError):
    """Training cannot start or continue with these inputs."""


@dataclass
class TrainOptions:
    """Settings of a training run (the command-line options of ``mammoscreen train``)."""

    config: GMICConfig = field(default_factory=GMICConfig)
    init: str | None = None  # None (random), a checkpoint path, or 'official' (official GMIC model 1)
    epochs: int = 10
    lr: float = 1e-4
    beta: float = 3.26e-4
    percent_t: float | None = None  # None: the config's
    batch_size: int = 4
    device: str = "cpu"
    seed: int = 0
    balanced: bool = False
    workers: int = 0
    amp: str = "auto"  # 'auto' (on with CUDA), 'on', 'off'
    saliency_reduction: str = "sum"
    label_smoothing: float = 0.0  # not in the paper; see losses.gmic_loss
    select_metric: str = "auroc_mean"
    weight_decay: float = 0.0
    progress: bool = True

    def settings(self) -> dict[str, Any]:
        """What determines the result (everything but epochs, device speed knobs and progress)."""
        d = asdict(self)
        d["config"] = self.config.to_dict()
        for key in ("epochs", "progress", "workers"):
            d.pop(key)
        return d


@dataclass
class TrainResult:
    output_dir: Path
    best_model: Path
    last_model: Path
    log: list[dict[str, Any]]
    best_epoch: int | None


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------

def auroc_or_none(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """AUROC, or None when it is undefined (only one class present)."""
    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() == labels.max():
        return None
    return float(roc_auc(labels, scores))


@torch.no_grad()
def evaluate(model: GMIC, loader: DataLoader, device: torch.device, beta: float, saliency_reduction: str,
             autocast: Callable[[], Any]) -> dict[str, Any]:
    """Validation loss and AUROC (benign, malignant) of ``y_fusion``; also returns the scores."""
    model.eval()
    scores, labels, losses, counts = [], [], [], []
    for x, y, _ in loader:
        x, y = x.to(device), y.to(device)
        with autocast():
            out = model(x)
        losses.append(float(gmic_loss(out, y, beta, saliency_reduction).total) * len(x))
        counts.append(len(x))
        scores.append(out.y_fusion.float().cpu().numpy())
        labels.append(y.cpu().numpy())
    s, t = np.concatenate(scores), np.concatenate(labels)
    return {"val_loss": sum(losses) / sum(counts), "val_auroc_benign": auroc_or_none(t[:, 0], s[:, 0]),
            "val_auroc_malignant": auroc_or_none(t[:, 1], s[:, 1]), "scores": s, "labels": t}


def selection_score(entry: dict[str, Any], metric: str) -> float | None:
    """Higher is better; None when the metric is undefined for this epoch."""
    if metric == "val_loss":
        return -entry["val_loss"]
    if metric == "malignant_auroc":
        return entry["val_auroc_malignant"]
    defined = [v for v in (entry["val_auroc_benign"], entry["val_auroc_malignant"]) if v is not None]
    return float(np.mean(defined)) if defined else None


# --------------------------------------------------------------------------------------------------
# Logs and curves
# --------------------------------------------------------------------------------------------------

def _csv_text(log: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in log:
        writer.writerow({k: ("" if entry.get(k) is None else entry.get(k)) for k in LOG_COLUMNS})
    return out.getvalue()


def plot_curves(log: Sequence[dict[str, Any]], path: Path) -> None:
    """Training/validation loss and validation AUROC per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    epochs = [e["epoch"] for e in log]
    fig = Figure(figsize=(9, 3.5))
    ax_loss, ax_auc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [e["train_loss"] for e in log], "o-", label="train")
    ax_loss.plot(epochs, [e["val_loss"] for e in log], "s-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    for key, label in (("val_auroc_benign", "benign"), ("val_auroc_malignant", "malignant")):
        values = [np.nan if e[key] is None else e[key] for e in log]
        ax_auc.plot(epochs, values, "o-", label=label)
    ax_auc.set(xlabel="epoch", ylabel="validation AUROC", title="validation AUROC (gaps: undefined)", ylim=(0, 1.02))
    ax_auc.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    from ..core.files import write_bytes_atomic

    write_bytes_atomic(path, buffer.getvalue())


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------

def _autocast_factory(device: torch.device, amp: str) -> tuple[Callable[[], Any], bool]:
    if amp not in ("auto", "on", "off"):
        raise TrainingError(f"amp must be 'auto', 'on' or 'off', got {amp!r}")
    enabled = amp == "on" or (amp == "auto" and device.type == "cuda")
    if not enabled:
        return (lambda: torch.autocast(device.type, enabled=False)), False
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return (lambda: torch.autocast(device.type, dtype=dtype)), device.type == "cuda"


def _loader(dataset: GMICImages, indices: Sequence[int], batch_size: int, workers: int,
            smallest: int = 1) -> DataLoader:
    # Plain lists as the batches: the order is decided by the epoch's seed, not by DataLoader's RNG.
    return DataLoader(dataset, batch_sampler=epoch_batches(list(indices), batch_size, smallest), num_workers=workers)


def _check_batches(config: GMICConfig, options: TrainOptions, images: Sequence[LabelledImage]) -> int:
    """The fewest images a training batch needs (see batches.py); refuses, before anything is trained, a run
    in which some batch could not have them."""
    smallest = smallest_batch(config)
    if smallest == 1:
        return smallest
    why = (f"in training, BatchNorm needs more than one value per channel, and one image gives it one "
           f"({why_one_image_is_too_few(config)})")
    if options.batch_size < smallest:
        raise TrainingError(f"batch size {options.batch_size} (--batch-size) cannot train this architecture: {why}; "
                            f"use a batch size of {smallest} or more, or a config with more or larger patches")
    epochs = range(1, options.epochs + 1) if options.balanced else [1]  # without balancing every epoch is alike
    for epoch in epochs:
        count = len(epoch_indices(images, epoch, options.seed, options.balanced))
        if count < smallest:
            raise TrainingError(f"epoch {epoch} would train on {count} image(s), but this architecture needs at "
                                f"least {smallest} in a batch: {why}; add images to the training exam list")
    return smallest


_CHECKPOINT_FIELDS = {"epoch": int, "model": dict, "optimizer": dict, "scaler": dict, "rng": dict, "log": list,
                      "settings": dict}


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint (``checkpoint.pt``) loaded with ``weights_only=True`` - it cannot run code - and
    checked for the fields a resume needs. Everything in it is a tensor, a number, a string or a container
    of those (the optimiser's and the scaler's state dicts, the RNG state as a byte tensor)."""
    try:
        state = load_torch(path, "training checkpoint")
    except CheckpointError as e:
        raise TrainingError(f"--resume: {e}") from None
    if not isinstance(state, dict):
        raise TrainingError(f"--resume: {path} is not a training checkpoint of 'mammoscreen train' (it holds a "
                            f"{type(state).__name__}, not a dict)")
    for key, kind in _CHECKPOINT_FIELDS.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise TrainingError(f"--resume: {path} is not a training checkpoint of 'mammoscreen train' (field "
                                f"{key!r} is missing or not a {kind.__name__})")
    if not isinstance(state["rng"].get("torch"), torch.Tensor):
        raise TrainingError(f"--resume: {path} has no random-number-generator state; cannot resume bit-exactly")
    return state


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _initial_model(options: TrainOptions, config: GMICConfig) -> GMIC:
    torch.manual_seed(options.seed)
    model = GMIC(config)
    if options.init is None:
        return model
    path: str | Path = options.init
    if str(options.init) == "official":
        from ..models.gmic.predictor import GMIC_SPEC
        from ..models.weights import resolve_weight_path

        path = resolve_weight_path(GMIC_SPEC, "official", "1")
    load_initial_weights(model, path)
    return model


def train_gmic(images_dir: str | Path, train_exams: Sequence[Exam] | str | Path,
               val_exams: Sequence[Exam] | str | Path, output_dir: str | Path,
               options: TrainOptions = TrainOptions(), *, resume: bool = False,  # noqa: B008 - never mutated
               val_images_dir: str | Path | None = None,
               on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train GMIC on cropped images with ``best_center`` for the config's window; see the module docstring.

    ``train_exams`` / ``val_exams`` are exam lists or paths to them; validation images are read from
    ``val_images_dir`` (default: ``images_dir``). ``on_epoch_end`` is called with each
    epoch's log entry after its checkpoint is written (raising from it stops the run, which can then be
    resumed).
    """
    output_dir = Path(output_dir)
    images_dir = Path(images_dir)
    val_images_dir = Path(val_images_dir) if val_images_dir is not None else images_dir
    if options.select_metric not in SELECT_METRICS:
        raise TrainingError(f"select_metric must be one of {SELECT_METRICS}, got {options.select_metric!r}")
    if options.epochs < 1 or options.batch_size < 1:
        raise TrainingError("epochs and batch size must be at least 1")
    for directory in (images_dir, val_images_dir):
        if not directory.is_dir():
            raise FileNotFoundError(f"images directory not found: {directory} (the cropped images from "
                                    "'mammoscreen crop')")
    config = options.config if options.percent_t is None else options.config.with_percent_t(options.percent_t)

    def images_of(exams: Sequence[Exam] | str | Path, what: str) -> tuple[list[LabelledImage], str]:
        if isinstance(exams, (str, Path)):
            return labelled_images(load_exam_list(exams), str(exams)), sha256_file(exams)
        # A list given in memory has no file to hash: its content is fingerprinted instead.
        exams = list(exams)
        source = f"{what} exam list"
        return labelled_images(exams, source), f"{IN_MEMORY}:sha256:{exam_list_fingerprint(exams, source)}"

    train_images, train_id = images_of(train_exams, "training")
    val_images, val_id = images_of(val_exams, "validation")
    window = config.input_size
    noise = augmentation_noise(config)
    train_set = GMICImages(train_images, images_dir, window, augment=True, noise=noise, seed=options.seed)
    val_set = GMICImages(val_images, val_images_dir, window)
    if options.balanced and not any(any(i.labels) for i in train_images):
        raise TrainingError("balanced sampling needs at least one exam with a positive (benign or malignant) label "
                            "in the training exam list")
    smallest = _check_batches(config, options, train_images)

    device = resolve_device(options.device)
    autocast, use_scaler = _autocast_factory(device, options.amp)
    settings = {**options.settings(), "config": config.to_dict(),
                "train_exam_list": train_id, "val_exam_list": val_id, "images": str(images_dir.resolve()),
                "val_images": str(val_images_dir.resolve()),
                "augmentation_noise": list(noise)}

    model = _initial_model(options, config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    log: list[dict[str, Any]] = []
    best_score: float | None = None
    best_epoch: int | None = None
    start_epoch = 1

    checkpoint_path = output_dir / CHECKPOINT
    if resume:
        if not checkpoint_path.is_file():
            raise TrainingError(f"--resume: no {checkpoint_path}; start without --resume")
        state = read_training_checkpoint(checkpoint_path)
        # The config's name is only a label of the config values (older checkpoints stored it).
        previous = {k: v for k, v in state["settings"].items() if k != "config_name"}
        if previous != settings:
            changed = sorted(k for k in set(settings) | set(previous) if settings.get(k) != previous.get(k))
            unchecked = any(previous.get(k) == IN_MEMORY for k in changed)
            raise TrainingError(f"--resume: {checkpoint_path} was made with different settings or data "
                                f"({', '.join(changed)}); use the original options or a new output directory"
                                + (" (it was written by an older version that did not fingerprint exam lists given "
                                   "in memory, so they cannot be compared)" if unchecked else ""))
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            _set_rng_state(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise TrainingError(f"--resume: {checkpoint_path} does not fit this model and optimiser "
                                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        log, best_score, best_epoch = state["log"], state.get("best_score"), state.get("best_epoch")
        start_epoch = state["epoch"] + 1
        if start_epoch > options.epochs:
            print(f"all {options.epochs} epochs are already done in {output_dir}", file=sys.stderr)
    elif checkpoint_path.is_file():
        raise TrainingError(f"{output_dir} already holds a training run ({CHECKPOINT}); pass --resume to continue it "
                            "or choose another output directory")
    output_dir.mkdir(parents=True, exist_ok=True)

    for epoch in range(start_epoch, options.epochs + 1):
        train_set.set_epoch(epoch)
        indices = epoch_indices(train_images, epoch, options.seed, options.balanced)
        loader = _loader(train_set, indices, options.batch_size, options.workers, smallest)
        model.train()
        sums: dict[str, float] = {}
        seen = 0
        started = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch}/{options.epochs}", unit="batch", disable=not options.progress,
                   file=sys.stderr)
        for x, y, _ in bar:
            x, y = x.to(device), y.to(device)
            with autocast():
                out = model(x)
            loss = gmic_loss(out, y, options.beta, options.saliency_reduction, options.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss.total).backward()
            scaler.step(optimizer)
            scaler.update()
            for name, value in loss.as_floats().items():
                sums[name] = sums.get(name, 0.0) + value * len(x)
            seen += len(x)
            elapsed = time.perf_counter() - started
            bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}", img_s=f"{seen / max(elapsed, 1e-9):.2f}")
        bar.close()
        train_seconds = time.perf_counter() - started
        val = evaluate(model, _loader(val_set, range(len(val_set)), options.batch_size, options.workers), device,
                       options.beta, options.saliency_reduction, autocast)
        entry = {"epoch": epoch, "train_loss": sums["loss"] / seen,
                 **{f"train_{k}": sums[k] / seen for k in ("global_bce", "local_bce", "fusion_bce", "saliency_l1")},
                 "val_loss": val["val_loss"], "val_auroc_benign": val["val_auroc_benign"],
                 "val_auroc_malignant": val["val_auroc_malignant"], "train_images": seen,
                 "seconds": round(time.perf_counter() - started, 3),
                 "images_per_second": round(seen / max(train_seconds, 1e-9), 3), "best": False}
        score = selection_score(entry, options.select_metric)
        if score is not None and (best_score is None or score > best_score):
            best_score, best_epoch, entry["best"] = score, epoch, True
        elif best_epoch is None and epoch == options.epochs:
            best_epoch, entry["best"] = epoch, True  # metric never defined: keep the last epoch
        log.append(entry)
        sidecar = {"epoch": epoch, "validation": {k: entry[k] for k in ("val_loss", "val_auroc_benign",
                                                                       "val_auroc_malignant")}}
        save_gmic_weights(model, output_dir / LAST_MODEL, sidecar)
        if entry["best"]:
            save_gmic_weights(model, output_dir / BEST_MODEL, sidecar)
        _write_logs(output_dir, log, settings, best_epoch)
        save_torch_atomic({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scaler": scaler.state_dict(), "rng": _rng_state(), "log": log,
                           "best_score": best_score, "best_epoch": best_epoch, "settings": settings},
                          checkpoint_path)
        undefined = [k for k in ("val_auroc_benign", "val_auroc_malignant") if entry[k] is None]
        print(f"epoch {epoch}: train loss {entry['train_loss']:.4f}, val loss {entry['val_loss']:.4f}, AUROC benign "
              f"{_fmt(entry['val_auroc_benign'])}, malignant {_fmt(entry['val_auroc_malignant'])}"
              + (" (undefined: the validation set has one class only)" if undefined else "")
              + (" *best*" if entry["best"] else ""), file=sys.stderr)
        if on_epoch_end is not None:
            on_epoch_end(entry)

    if not (output_dir / BEST_MODEL).is_file():  # e.g. resumed after the last epoch of an old run
        raise TrainingError(f"{output_dir}: no best model was written")
    return TrainResult(output_dir, output_dir / BEST_MODEL, output_dir / LAST_MODEL, log, best_epoch)


def _fmt(value: float | None) -> str:
    return "undefined" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _write_logs(output_dir: Path, log: Sequence[dict[str, Any]], settings: dict[str, Any],
                best_epoch: int | None) -> None:
    write_text_atomic(output_dir / LOG_CSV, _csv_text(log))
    write_json_atomic(output_dir / LOG_JSON, {"settings": {**settings, "config_name": config_name(GMICConfig.from_dict(
        settings["config"]))}, "best_epoch": best_epoch, "epochs": list(log)})
    plot_curves(log, output_dir / CURVES_PNG)
