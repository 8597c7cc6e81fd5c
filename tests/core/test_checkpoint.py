import pytest
import torch

from ltm_gym.core import load_checkpoint, save_checkpoint
from ltm_gym.core import checkpoint as ckpt_mod


def test_round_trip(tmp_path):
    path = save_checkpoint({"w": torch.arange(5), "step": 3}, tmp_path / "c.pt")
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(5))


def test_crash_while_writing_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint({"step": 1}, path)

    def crashing_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpo")
        raise OSError("disk died mid-write")

    monkeypatch.setattr(ckpt_mod.torch, "save", crashing_save)
    with pytest.raises(OSError, match="mid-write"):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing.pt")
