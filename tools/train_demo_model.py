#!/usr/bin/env python
"""Train the bundled demo model ``gmic_demo`` on synthetic mammograms and write it into the package.

Steps (every seed is fixed and recorded in the model card):

1. generate training, validation and held-out synthetic exams with ``mammoscreen.data.synth`` (three
   different generator seeds), crop them and add the window centres of the ``gmic-tiny`` config;
2. train ``gmic-tiny`` on the CPU with :func:`mammoscreen.train.train_gmic` (resumable: re-run with
   ``--resume`` after an interruption);
3. choose the epoch with the best validation malignant AUROC + pointing game (validation lesion masks), and
   measure it on the held-out exams: image-level malignant AUROC and the pointing game
   on malignant lesions;
4. with ``--install``: copy the weights to ``src/mammoscreen/models/pretrained/gmic_demo_synthetic.pt`` and
   write the model card ``gmic_demo_synthetic.json`` (+ ``.md``) with the sha256, command, seeds, data
   sizes, config and metrics.

Usage (about 20-30 minutes on 2 CPU cores)::

    python tools/train_demo_model.py --work-dir /tmp/demo-work --install
"""

from __future__ import annotations

import argparse
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
PRETRAINED = REPO / "src" / "mammoscreen" / "models" / "pretrained"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work-dir", type=Path, required=True, help="where the synthetic data and the run go")
    p.add_argument("--train-exams", type=int, default=400)
    p.add_argument("--val-exams", type=int, default=80)
    p.add_argument("--heldout-exams", type=int, default=100)
    p.add_argument("--train-seed", type=int, default=1001, help="generator seed of the training exams")
    p.add_argument("--val-seed", type=int, default=1002, help="generator seed of the validation exams")
    p.add_argument("--heldout-seed", type=int, default=2024, help="generator seed of the held-out exams")
    p.add_argument("--seed", type=int, default=0, help="training seed (initialisation, order, augmentation)")
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--beta", type=float, default=3e-3)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--percent-t", type=float, default=0.01, help="top-t%% pooling")
    p.add_argument("--global-strides", type=int, nargs=5, default=None,
                   help="stage strides of the global network (default: gmic-tiny's)")
    p.add_argument("--init", default=None, help="start from these weights (a previous stage of the demo model)")
    p.add_argument("--run-name", default="run", help="sub-directory of --work-dir for the training run")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (results are bit-identical only with the same number)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--install", action="store_true", help="write the weights and model card into the package")
    args = p.parse_args(argv)

    from mammoscreen import __version__
    from mammoscreen.core.files import sha256_file, write_json_atomic, write_text_atomic
    from mammoscreen.models.gmic.predictor import GMICPredictor, load_gmic
    from mammoscreen.train import TrainOptions, train_gmic
    from mammoscreen.train.configs import GMIC_TINY, augmentation_noise, config_name
    from mammoscreen.train.demo import SYNTH_SCALE, heldout_metrics, synthetic_split

    torch.set_num_threads(args.threads)
    config = GMIC_TINY if args.percent_t is None else GMIC_TINY.with_percent_t(args.percent_t)
    if args.global_strides is not None:
        from dataclasses import replace

        config = replace(config, global_strides=tuple(args.global_strides))
    work = args.work_dir
    t0 = time.perf_counter()
    train = synthetic_split(work / "train", args.train_exams, args.train_seed, config, workers=args.workers)
    val = synthetic_split(work / "val", args.val_exams, args.val_seed, config, workers=args.workers)
    heldout = synthetic_split(work / "heldout", args.heldout_exams, args.heldout_seed, config, workers=args.workers)
    data_seconds = time.perf_counter() - t0

    options = TrainOptions(config=config, epochs=args.epochs, lr=args.lr, beta=args.beta, batch_size=args.batch_size,
                           label_smoothing=args.label_smoothing, device="cpu", seed=args.seed, init=args.init, workers=args.workers, select_metric="malignant_auroc")
    run_dir = work / args.run_name
    snapshots = run_dir / "epochs"

    def snapshot(entry: dict) -> None:
        # Keep every epoch's weights: the demo model is chosen on validation localisation as well.
        snapshots.mkdir(parents=True, exist_ok=True)
        for suffix in (".p", ".json"):
            shutil.copyfile(run_dir / f"last_model{suffix}", snapshots / f"epoch_{entry['epoch']}{suffix}")

    result = train_gmic(train.cropped_dir, train.exams, val.exams, run_dir, options, resume=args.resume,
                        val_images_dir=val.cropped_dir, on_epoch_end=snapshot)

    # Choose the epoch on the validation exams (seed --val-seed): malignant AUROC + pointing game. The
    # pointing game needs lesion masks, which synthetic data have; the held-out exams are not used here.
    selection = []
    for entry in result.log:
        path = snapshots / f"epoch_{entry['epoch']}.p"
        if not path.is_file():
            continue
        m = heldout_metrics(GMICPredictor([load_gmic(path)], [path], "demo", device="cpu"), val)
        selection.append({"epoch": entry["epoch"], "val_malignant_auroc": m["malignant_auroc"],
                          "val_pointing_game_malignant": m["pointing_game_malignant"]})
        print(f"validation epoch {entry['epoch']}: {selection[-1]}")
    chosen = max(selection, key=lambda e: (e["val_malignant_auroc"] or 0) + (e["val_pointing_game_malignant"] or 0))
    chosen_weights = snapshots / f"epoch_{chosen['epoch']}.p"

    model = load_gmic(chosen_weights)
    predictor = GMICPredictor([model], [chosen_weights], "demo", device="cpu")
    t2 = time.perf_counter()
    metrics = heldout_metrics(predictor, heldout)
    metrics["seconds"] = round(time.perf_counter() - t2, 1)
    best = next(e for e in result.log if e["epoch"] == chosen["epoch"])
    print(f"held-out: {metrics}")
    print(f"chosen epoch {chosen['epoch']}: validation {best} {chosen}")

    if args.install:
        PRETRAINED.mkdir(parents=True, exist_ok=True)
        weights = PRETRAINED / "gmic_demo_synthetic.pt"
        shutil.copyfile(chosen_weights, weights)
        sha = sha256_file(weights)
        # --resume only continues an interrupted run; it does not change the result.
        given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--resume"]
        command = "python tools/train_demo_model.py " + " ".join(shlex.quote(a) for a in given)
        card = {
            "name": "gmic_demo",
            "weights": weights.name,
            "sha256": sha,
            "size_bytes": weights.stat().st_size,
            "statement": "SYNTHETIC DATA ONLY - NOT FOR CLINICAL USE. Trained on mammoscreen's own synthetic "
                         "mammograms to demonstrate the system offline; it has never seen a real mammogram and its "
                         "outputs mean nothing for real patients.",
            "license": "MIT",
            "architecture": f"GMIC (Shen et al. 2021), config {config_name(config) or 'custom (see gmic_config)'}",
            "config_name": config_name(config),
            "gmic_config": config.to_dict(),
            "training_command": command,
            "training": {"optimizer": "Adam", "lr": args.lr, "beta": args.beta, "saliency_reduction": "sum", "label_smoothing": args.label_smoothing,
                         "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
                         "balanced_sampling": False, "init": args.init, "augmentation_noise_px": list(augmentation_noise(config)),
                         "chosen_epoch": chosen["epoch"], "threads": args.threads,
                         "selected_on": "validation exams: malignant AUROC + malignant pointing game",
                         "epoch_selection": selection,
                         "train_seconds": round(sum(e["seconds"] for e in result.log), 1), "data_seconds": round(data_seconds, 1),
                         "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch "
                                    f"{torch.__version__}, mammoscreen {__version__}"},
            "data": {"generator": "mammoscreen.data.synth.generate_exams", "scale": SYNTH_SCALE,
                     "p_benign": 0.3, "p_malignant": 0.3,
                     "train": {"seed": args.train_seed, "exams": args.train_exams, "images": 4 * args.train_exams},
                     "validation": {"seed": args.val_seed, "exams": args.val_exams, "images": 4 * args.val_exams},
                     "heldout": {"seed": args.heldout_seed, "exams": args.heldout_exams,
                                 "images": 4 * args.heldout_exams}},
            "validation_metrics": {**{k: best[k] for k in ("val_loss", "val_auroc_benign", "val_auroc_malignant")},
                                   "val_pointing_game_malignant": chosen["val_pointing_game_malignant"]},
            "heldout_metrics": metrics,
            "training_log": result.log,
        }
        write_json_atomic(PRETRAINED / "gmic_demo_synthetic.json", card)
        write_text_atomic(PRETRAINED / "gmic_demo_synthetic.md", model_card_markdown(card))
        print(f"wrote {weights} (sha256 {sha}) and its model card")
    return 0


def model_card_markdown(card: dict) -> str:
    h, v, t = card["heldout_metrics"], card["validation_metrics"], card["training"]
    d = card["data"]
    return f"""# gmic_demo — GMIC trained on synthetic mammograms

**{card['statement']}**

- weights: `{card['weights']}` ({card['size_bytes']} bytes), sha256 `{card['sha256']}`, licence {card['license']}
- architecture: {card['architecture']}; input window {card['gmic_config']['input_size']}, top-t {card['gmic_config']['percent_t']}
- data: `{d['generator']}` at scale {d['scale']}; train seed {d['train']['seed']} ({d['train']['exams']} exams),
  validation seed {d['validation']['seed']} ({d['validation']['exams']} exams), held-out seed {d['heldout']['seed']}
  ({d['heldout']['exams']} exams)
- training: Adam lr {t['lr']}, beta {t['beta']}, {t['epochs']} epochs, batch {t['batch_size']}, seed {t['seed']};
  epoch {t['chosen_epoch']} chosen on the validation exams (malignant AUROC + pointing game); training took
  {t['train_seconds']} s on {t['machine']}
- validation: malignant AUROC {v['val_auroc_malignant']:.4f}, benign AUROC {v['val_auroc_benign']:.4f}, pointing game
  {v['val_pointing_game_malignant']:.3f}
- held-out ({h['images']} images, {h['malignant_images']} malignant): malignant AUROC {h['malignant_auroc']:.4f},
  benign AUROC {h['benign_auroc']:.4f}, pointing game on malignant lesions {h['pointing_game_malignant']:.3f}
  ({h['pointing_game_lesion_images']} images with a malignant lesion)

Reproduce: `{card['training_command']}`
"""


if __name__ == "__main__":
    sys.exit(main())
