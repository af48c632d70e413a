"""Which images an epoch trains on.

The paper trains each epoch on all exams with a positive (benign or malignant) finding plus an equal
number of exams drawn at random from the negative ones; without balancing every image is used. Either
way the order is shuffled, and everything is drawn from a generator seeded with (seed, epoch), so an
epoch's images do not depend on what ran before it (a resumed run sees the same epochs).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .data import LabelledImage


def epoch_indices(images: Sequence[LabelledImage], epoch: int, seed: int, balanced: bool) -> list[int]:
    """Indices into ``images`` for one epoch, shuffled."""
    rng = np.random.default_rng([seed, epoch, 7])
    if not balanced:
        return [int(i) for i in rng.permutation(len(images))]
    exam_positive: dict[int, bool] = {}
    for item in images:
        exam_positive[item.exam_index] = exam_positive.get(item.exam_index, False) or any(item.labels)
    positives = sorted(e for e, p in exam_positive.items() if p)
    negatives = sorted(e for e, p in exam_positive.items() if not p)
    chosen = set(positives)
    if negatives:
        count = min(len(positives), len(negatives))
        chosen.update(int(e) for e in rng.choice(negatives, size=count, replace=False))
    indices = np.array([i for i, item in enumerate(images) if item.exam_index in chosen], dtype=np.int64)
    return [int(i) for i in rng.permutation(indices)]
