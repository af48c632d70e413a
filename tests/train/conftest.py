"""A few tiny synthetic exams, cropped and centred for a micro GMIC, shared by the training tests."""

from __future__ import annotations

import pytest

from mammoscreen.models.gmic.modeling import GMICConfig

# A GMIC small enough to train an epoch on a dozen images in about a second.
MICRO = GMICConfig(input_size=(256, 160), percent_t=0.1, num_patches=2, patch_size=(32, 32), global_channels=4,
                   global_blocks=(1, 1, 1, 1, 1), global_strides=(1, 2, 2, 2, 1), local_channels=4,
                   local_blocks=(1, 1, 1, 1), attention_dim=8)


@pytest.fixture(scope="session")
def micro_config() -> GMICConfig:
    return MICRO


@pytest.fixture(scope="session")
def micro_split(tmp_path_factory):
    """Four synthetic exams (16 images, both labels present), cropped, with centres for MICRO's window."""
    from mammoscreen.train.demo import synthetic_split

    root = tmp_path_factory.mktemp("train_micro")
    return synthetic_split(root, 4, seed=3, config=MICRO, p_benign=0.5, p_malignant=0.5)
