"""``mammoscreen train``: train or fine-tune GMIC (see docs/training.md)."""

from __future__ import annotations

import argparse

from .common import SEED, existing_dir, existing_file, float_range, int_range, output_dir, positive_int


def _checkpoint(text: str) -> str:
    """--init: 'official', or a checkpoint file that exists."""
    return text if text == "official" else str(existing_file(text))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train or fine-tune GMIC on cropped images with window centres",
        description="Train GMIC with the paper's objective (BCE on global, local and fusion outputs + beta x L1 of "
                    "the saliency maps; Adam) and the official window augmentation. The exam lists are cropped exam "
                    "lists with best_center for the config's window ('mammoscreen crop', then 'mammoscreen centers "
                    "--window ROWS COLS') and cancer_label. Writes OUT/best_model.p (official GMIC key layout) + "
                    "best_model.json (architecture), a resumable checkpoint every epoch, training_log.csv/.json and "
                    "curves.png.")
    p.add_argument("--model", default="gmic", choices=["gmic"], help="architecture to train (only gmic)")
    p.add_argument("--images", required=True, type=existing_dir, help="directory of the cropped PNGs")
    p.add_argument("--val-images", type=existing_dir, default=None,
                   help="directory of the validation images if not --images")
    p.add_argument("--exam-list", required=True, type=existing_file,
                   help="training exam list with best_center and labels")
    p.add_argument("--val-exam-list", required=True, type=existing_file, help="validation exam list (same form)")
    p.add_argument("--output-dir", required=True, type=output_dir)
    p.add_argument("--config", default="official", help="architecture: official or gmic-tiny (default official)")
    p.add_argument("--init", default=None, type=_checkpoint, metavar="PATH|official",
                   help="start from a GMIC checkpoint (official key layout) or 'official' (sample_model_1.p)")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--lr", type=float_range(0, 10, low_open=True), default=1e-4,
                   help="Adam learning rate (default 1e-4)")
    p.add_argument("--beta", type=float_range(0, 1000), default=3.26e-4,
                   help="weight of the saliency L1 term (default 3.26e-4)")
    p.add_argument("--saliency-reduction", choices=["sum", "mean"], default="sum",
                   help="L1 of a saliency map: sum over its pixels (the paper) or mean (default sum)")
    p.add_argument("--label-smoothing", type=float_range(0, 1, high_open=True), default=0.0,
                   help="train towards eps/2 and 1-eps/2 (not in the paper; keeps saliency maps from saturating; "
                        "default 0)")
    p.add_argument("--percent-t", type=float_range(0, 1, low_open=True), default=None,
                   help="top-t%% pooling fraction, in (0, 1] (default: the config's)")
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--amp", choices=["auto", "on", "off"], default="auto",
                   help="mixed precision (torch.autocast): auto = on with CUDA only")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--balanced", action="store_true",
                   help="each epoch: all positive exams plus as many random negative exams (as the paper)")
    p.add_argument("--select", dest="select_metric", default="auroc_mean",
                   choices=["auroc_mean", "malignant_auroc", "val_loss"],
                   help="validation metric that picks best_model.p (default: mean AUROC of both classes)")
    p.add_argument("--workers", type=int_range(0, 256), default=0,
                   help="data-loader processes (default 0: in the main process)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output-dir after the last finished epoch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from ..train import TrainOptions, config_by_name, train_gmic

    options = TrainOptions(config=config_by_name(args.config), init=args.init, epochs=args.epochs, lr=args.lr,
                           beta=args.beta, percent_t=args.percent_t, batch_size=args.batch_size, device=args.device,
                           seed=args.seed, balanced=args.balanced, workers=args.workers, amp=args.amp,
                           saliency_reduction=args.saliency_reduction, label_smoothing=args.label_smoothing,
                           select_metric=args.select_metric,
                           progress=not args.quiet)
    result = train_gmic(args.images, args.exam_list, args.val_exam_list, args.output_dir, options, resume=args.resume,
                        val_images_dir=args.val_images)
    print(f"best epoch {result.best_epoch}: {result.best_model}")
    return 0
