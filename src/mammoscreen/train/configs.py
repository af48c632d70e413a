"""Named GMIC architectures: the published one and a small one that trains on a CPU.

A config name is recorded in every checkpoint's JSON sidecar, so a trained model can be rebuilt from it.
"""

from __future__ import annotations

from dataclasses import replace

from ..models.gmic.modeling import GMICConfig

OFFICIAL = GMICConfig()

# A GMIC a quarter of the published size in each direction (a 736x480 window, 64x64 patches), with fewer
# channels and one block per stage. The last global stage keeps stride 1 so the saliency map (23x15) has
# 32-pixel cells: half the official 64-pixel cells, which matters for localising small synthetic lesions.
GMIC_TINY = GMICConfig(
    input_size=(736, 480),
    percent_t=0.05,
    num_patches=4,
    patch_size=(64, 64),
    global_channels=8,
    global_blocks=(1, 1, 1, 1, 1),
    global_strides=(1, 2, 2, 2, 1),
    local_channels=16,
    local_blocks=(1, 1, 1, 1),
    attention_dim=32,
)

# The bundled demo model's architecture: gmic-tiny with the last two global stages at stride 1, so the
# saliency map is 46x30 (16-pixel cells, the official map size), and top-t 0.2% (3 cells). The finer
# map localised the synthetic lesions far better than 32-pixel cells (docs/training.md).
GMIC_DEMO = replace(GMIC_TINY, global_strides=(1, 2, 2, 1, 1), percent_t=0.002)

CONFIGS: dict[str, GMICConfig] = {"official": OFFICIAL, "gmic-tiny": GMIC_TINY, "gmic-demo": GMIC_DEMO}


def config_by_name(name: str) -> GMICConfig:
    """The architecture called ``name`` ('official', 'gmic-tiny')."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown GMIC config {name!r}; choose one of {', '.join(CONFIGS)}") from None


def config_name(config: GMICConfig) -> str | None:
    """The name of a config, ignoring its top-t% (a training setting); None for a custom one."""
    for name, known in CONFIGS.items():
        if known.with_percent_t(config.percent_t) == config:
            return name
    return None


def augmentation_noise(config: GMICConfig) -> tuple[int, int]:
    """(position noise, size noise) in pixels of the training window for ``config``.

    The official pipeline moves the 2944-row window by up to 100 pixels and changes each border by up
    to 100 pixels; smaller windows get the same fraction of their height (25 pixels for 736 rows).
    """
    noise = int(round(100 * config.input_size[0] / OFFICIAL.input_size[0]))
    return noise, noise
