"""What a model's weights expect of an image, as a typed record that travels with the weights.

Like timm's ``pretrained_cfg`` and torchvision's ``Weights.transforms``: the pipeline reads ``crop`` and
``windows`` from it (which crop and which optimal-centre search a model needs), the model's predictor
reads its own settings from it, and ``mammoscreen models`` and the docs print :meth:`Preprocessing.describe`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Preprocessing:
    """How one image (or exam) becomes a model input."""

    source: str = "cropped"  # "cropped": the NYU breast crop of the 16-bit PNG; "original": the PNG itself
    windows: Mapping[str, tuple[int, int]] | None = None  # input window (rows, cols) per view angle, placed around
    # best_center (the optimal-centre search of preprocess.centers); None: the whole image is used
    flip: str = "none"  # "face right": right-breast views mirrored so every breast faces right
    resize: tuple[int, int] | None = None  # (rows, cols) the image is resized to
    standardisation: str = ""  # e.g. "per image (mean 0, sd 1)"
    augmentation: str = "none"  # test-time random noise, e.g. of the window's position
    seed: int | None = None  # the official seed of that noise
    notes: str = ""  # anything else, in words

    @property
    def crop(self) -> bool:
        """Whether the model needs the NYU breast crop (and so the crop stage of a run)."""
        return self.source == "cropped"

    def describe(self) -> str:
        """One line for ``mammoscreen models`` and the docs."""
        parts = ["cropped 16-bit PNG" if self.crop else "original 16-bit PNG"]
        if self.flip == "face right":
            parts.append("breast mirrored to face right")
        if self.windows:
            sizes = {size for size in self.windows.values()}
            if len(sizes) == 1:
                rows, cols = next(iter(sizes))
                parts.append(f"{rows}x{cols} window around best_center")
            else:
                parts.append("a window of " + " / ".join(f"{angle} {r}x{c}" for angle, (r, c) in self.windows.items())
                             + " around best_center")
        if self.resize:
            parts.append(f"resized to {self.resize[1]}x{self.resize[0]}")
        if self.augmentation != "none":
            parts.append(self.augmentation + (f" (seed {self.seed})" if self.seed is not None else ""))
        if self.standardisation:
            parts.append(f"standardised {self.standardisation}")
        if self.notes:
            parts.append(self.notes)
        return ", ".join(parts)
