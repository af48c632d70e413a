"""What a model's weights expect of an image, as a typed record that travels with the weights.

Like timm's ``pretrained_cfg`` and torchvision's ``Weights.transforms``: the pipeline reads ``crop`` and
``windows`` from it (which crop and which optimal-centre search a model needs), the model's predictor
reads its own settings from it, and ``mammoscreen models`` and the docs print :meth:`Preprocessing.describe`,
a rendering of the fields (no model has a description of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

UNITS = {"exam": "all four views of an exam", "image": "one image at a time"}
CHANNELS = {"grey": "", "every channel": "same image in every channel", "B,G,R": "grey in B,G,R"}


@dataclass(frozen=True)
class Preprocessing:
    """How one image (or exam) becomes a model input."""

    source: str = "cropped"  # "cropped": the NYU breast crop of the 16-bit PNG; "original": the PNG itself
    unit: str | None = None  # what one forward pass sees (UNITS); None: one image, not worth saying
    scale_to_8bit: bool = False  # divided by its maximum to 0-255 (8 bits)
    auto_level: bool = False  # ImageMagick's -auto-level (stretched to the full range) first
    flip: str = "none"  # "face right": right-breast views mirrored so every breast faces right
    windows: Mapping[str, tuple[int, int]] | None = None  # input window (rows, cols) per view angle, placed around
    # best_center (the optimal-centre search of the run's centre stage); None: the whole image is used
    window_shift: tuple[int, int] | None = None  # test-time noise: the window moved by up to (rows, cols) px ...
    window_size_noise: int = 0  # ... and each of its borders by up to this many px
    seed: int | None = None  # the official seed of that noise
    resize_back: str = ""  # interpolation that resizes a noisy window back to the window size, e.g. "bicubic"
    resize: tuple[int, int] | None = None  # (rows, cols) the image is resized to
    short_side: int | None = None  # resized so the short side has this length ...
    max_long_side: int | None = None  # ... unless the long side would exceed this one
    resize_filter: str = ""  # e.g. "Lanczos", "bilinear"
    keep_aspect: bool = True  # False: ``resize`` ignores the aspect ratio
    channels: str = "grey"  # CHANNELS: one grey channel, the same image in every channel, or grey as B,G,R
    rescale: float | None = None  # pixel values multiplied by this
    mean: float | tuple[float, ...] | None = None  # subtracted after ``rescale`` (a tuple: per channel)
    mean_name: str = ""  # what ``mean`` is, e.g. "mean pixel intensity"
    mean_is_default: bool = False  # a model option can replace ``mean``
    standardisation: str = ""  # e.g. "per image" (mean 0, sd 1)
    heatmaps: tuple[str, ...] = ()  # patch-classifier heatmaps added as input channels, e.g. ("benign", "malignant")
    heatmaps_variant: str = ""  # the variant that takes them

    def __post_init__(self) -> None:
        if self.source not in ("cropped", "original"):
            raise ValueError(f"source must be 'cropped' or 'original', got {self.source!r}")
        if self.unit is not None and self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
        if self.channels not in CHANNELS:
            raise ValueError(f"channels must be one of {', '.join(CHANNELS)}, got {self.channels!r}")

    @property
    def crop(self) -> bool:
        """Whether the model needs the NYU breast crop (and so the crop stage of a run)."""
        return self.source == "cropped"

    def describe(self) -> str:
        """One line for ``mammoscreen models`` and the docs."""
        parts = ["cropped 16-bit PNG" if self.crop else "original 16-bit PNG"]
        if self.scale_to_8bit:
            parts.append("scaled to 8 bits by its maximum")
        if self.auto_level:
            parts.append("ImageMagick auto-level")
        if self.flip == "face right":
            parts.append("breast mirrored to face right")
        parts += self._window_parts() + self._resize_parts()
        if CHANNELS[self.channels]:
            parts.append(CHANNELS[self.channels])
        if self.mean is not None or self.rescale is not None:
            parts.append(self._intensity())
        if self.standardisation:
            parts.append(f"standardised {self.standardisation}")
        if self.heatmaps:
            parts.append(f"+ {' and '.join(self.heatmaps)} patch-classifier heatmaps as extra channels"
                         + (f" ({self.heatmaps_variant} variant)" if self.heatmaps_variant else ""))
        line = ", ".join(parts)
        return f"{UNITS[self.unit]}: {line}" if self.unit else line

    def _window_parts(self) -> list[str]:
        if not self.windows:
            return []
        sizes = {size for size in self.windows.values()}
        if len(sizes) == 1:
            rows, cols = next(iter(sizes))
            parts = [f"{rows}x{cols} window around best_center"]
        else:
            parts = ["a window of " + " / ".join(f"{angle} {r}x{c}" for angle, (r, c) in self.windows.items())
                     + " around best_center"]
        if self.window_shift:
            rows, cols = self.window_shift
            shift = f"{rows} px" if rows == cols else f"{rows} px (rows) / {cols} px (cols)"
            size = f" and size noise up to {self.window_size_noise} px" if self.window_size_noise else ""
            seed = f", seed {self.seed}" if self.seed is not None else ""
            parts.append(f"window position noise up to {shift}{size} (the official draws{seed})")
        if self.resize_back:
            parts.append(f"resized back to the window size ({self.resize_back})")
        return parts

    def _resize_parts(self) -> list[str]:
        how = [self.resize_filter] if self.resize_filter else []
        if self.resize:
            how += [] if self.keep_aspect else ["aspect ratio ignored"]
            return [f"resized to {self.resize[1]}x{self.resize[0]}" + (f" ({', '.join(how)})" if how else "")]
        if self.short_side:
            longest = f" or the long side at most {self.max_long_side} px" if self.max_long_side else ""
            return [f"resized{f' ({how[0]})' if how else ''} so the short side is {self.short_side} px{longest}"]
        return []

    def _intensity(self) -> str:
        if isinstance(self.mean, tuple):
            mean = f"the {self.mean_name or 'means'} ({', '.join(str(m) for m in self.mean)})"
        elif self.mean is not None:
            mean = f"{self.mean_name or 'mean'} ({self.mean}{' by default' if self.mean_is_default else ''})"
        if self.rescale is None:
            return f"minus {mean}"
        return f"x*{self.rescale}" + (f" - {mean}" if self.mean is not None else "")
