"""Training and fine-tuning GMIC: named architecture configs, data with the official augmentation, the paper's
loss, class-balanced sampling, and a resumable training loop whose best checkpoint loads like an official one.

See ``docs/training.md``.
"""

from .configs import CONFIGS, config_by_name, config_name
from .losses import GMICLoss, gmic_loss
from .loop import TrainOptions, TrainResult, train_gmic

__all__ = ["CONFIGS", "config_by_name", "config_name", "GMICLoss", "gmic_loss", "TrainOptions", "TrainResult",
           "train_gmic"]
