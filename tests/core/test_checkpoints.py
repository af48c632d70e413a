"""PyTorch checkpoints: weights_only, archive sizes checked first, state dicts with clear messages."""

from __future__ import annotations

import io
import zipfile

import pytest
import torch

from hostile import torch_checkpoint_with_canary
from mammoscreen.core.archives import check_zip, load_npz
from mammoscreen.core.checkpoints import CheckpointError, load_torch, state_dict_problem
from mammoscreen.core.limits import InputLimitError, limits_override


def _deflated(path, entry_size: int) -> None:
    """A valid checkpoint of one float32 tensor of ``entry_size`` bytes, its entries re-zipped with deflate."""
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(entry_size // 4)}, buffer)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))


def test_plain_checkpoints_load(tmp_path):
    state = {"a.weight": torch.arange(6.0).reshape(2, 3), "nested": {"step": 3, "betas": (0.9, 0.999)}}
    torch.save(state, tmp_path / "ok.pt")
    loaded = load_torch(tmp_path / "ok.pt")
    assert torch.equal(loaded["a.weight"], state["a.weight"]) and loaded["nested"] == state["nested"]
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert torch.equal(load_torch(tmp_path / "legacy.pt")["a.weight"], state["a.weight"])


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    canary = tmp_path / "canary"
    path = tmp_path / "evil.pt"
    path.write_bytes(torch_checkpoint_with_canary(canary, {"w": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="names .*open.*nothing in the file was run"):
        load_torch(path)
    assert not canary.exists()


def test_a_deflate_bomb_is_refused_before_it_is_inflated(tmp_path):
    path = tmp_path / "bomb.pt"
    _deflated(path, 64 * 2 ** 20)  # 64 MiB of zeros in about 64 KiB
    assert path.stat().st_size < 2 ** 20
    with pytest.raises(CheckpointError, match="would decode to 67,108,864.*MAMMOSCREEN_MAX_EXPANSION"):
        load_torch(path)
    with limits_override(max_expansion=10_000):
        assert load_torch(path)["w"].numel() == 16 * 2 ** 20
    with limits_override(max_array_bytes=2 ** 20, max_expansion=10_000):
        with pytest.raises(CheckpointError, match="MAMMOSCREEN_MAX_ARRAY_BYTES"):
            load_torch(path)


def test_npz_files_are_checked_the_same_way(tmp_path):
    import numpy as np

    np.savez_compressed(tmp_path / "maps.npz", saliency_map=np.zeros((1024, 1024, 8)))
    with pytest.raises(InputLimitError, match="saliency_map.npy"):
        check_zip(tmp_path / "maps.npz")
    np.savez_compressed(tmp_path / "small.npz", a=np.arange(3))
    assert load_npz(tmp_path / "small.npz")["a"].tolist() == [0, 1, 2]
    np.savez(tmp_path / "objects.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_npz(tmp_path / "objects.npz")


def test_damaged_and_foreign_files(tmp_path):
    (tmp_path / "text.pt").write_text("corrupt")
    with pytest.raises(CheckpointError, match="text.pt: not a loadable PyTorch checkpoint"):
        load_torch(tmp_path / "text.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_torch(tmp_path / "absent.pt")
    torch.save({"w": torch.zeros(3)}, tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_torch(tmp_path / "cut.pt")


def test_state_dict_problems_are_named():
    assert state_dict_problem({"a": torch.zeros(1)}) is None
    assert "got list" in state_dict_problem([torch.zeros(1)])
    problem = state_dict_problem({0: torch.zeros(1), "b": torch.zeros(1)})
    assert "1 of its 2 keys are not strings (e.g. 0, a int)" in problem
