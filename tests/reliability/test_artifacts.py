"""Damaged artifacts: every kind the package writes, truncated, empty or garbage, is refused with an
error naming the file, and the file is left as it was."""

import pytest
import torch

import ltm_gym.agents as agents
from ltm_gym.core import ArtifactError, load_checkpoint, save_checkpoint
from ltm_gym.envs import LLMMemoryVectorEnv
from tests.agents.test_registry import SMALL
from tests.core.toy import make_trainer


def damage(path, kind: str) -> bytes:
    data = path.read_bytes()
    bad = {"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"\x00not a checkpoint\xff" * 40}[kind]
    path.write_bytes(bad)
    return bad


KINDS = ["truncated", "empty", "garbage"]


@pytest.mark.parametrize("kind", KINDS)
def test_trainer_checkpoint(tmp_path, kind):
    t = make_trainer(steps=3, run_dir=tmp_path)
    t.fit()
    bad = damage(tmp_path / "checkpoint.pt", kind)
    with pytest.raises(ArtifactError, match=str(tmp_path / "checkpoint.pt")):
        make_trainer(steps=6, run_dir=tmp_path).fit()                 # resume refuses, does not start over
    assert (tmp_path / "checkpoint.pt").read_bytes() == bad


def test_checkpoint_of_another_kind(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ArtifactError, match="list.pt.*holds a list"):
        load_checkpoint(tmp_path / "list.pt")


@pytest.mark.parametrize("name", ["reinforce", "ppo", "sac"])
@pytest.mark.parametrize("kind", KINDS)
def test_agent_files(backend, tmp_path, name, kind):
    agent = agents.make(name, LLMMemoryVectorEnv(num_envs=2, backend=backend), device="cpu", **SMALL[name])
    path = agent.save(tmp_path / agent.file_name)
    bad = damage(path, kind)
    twin = agents.make(name, LLMMemoryVectorEnv(num_envs=2, backend=backend), device="cpu", **SMALL[name])
    with pytest.raises(ArtifactError, match=str(path)):
        twin.load(path)
    with pytest.raises(ArtifactError, match=str(path)):
        twin.init_from(path)
    assert path.read_bytes() == bad


def test_agent_file_of_another_algorithm(backend, tmp_path):
    reinforce = agents.make("reinforce", LLMMemoryVectorEnv(num_envs=2, backend=backend), device="cpu",
                            **SMALL["reinforce"])
    path = reinforce.save(tmp_path / "agent.pt")
    ppo = agents.make("ppo", LLMMemoryVectorEnv(num_envs=2, backend=backend), device="cpu", **SMALL["ppo"])
    with pytest.raises(ArtifactError, match="agent.pt.*SB3 .zip"):
        ppo.init_from(path)
    other = agents.make("reinforce", LLMMemoryVectorEnv(num_envs=2, backend=backend), device="cpu",
                        **{**SMALL["reinforce"], "writer": {"d_model": 16, "n_head": 2}})
    with pytest.raises(ArtifactError, match="agent.pt.*fits this agent"):
        other.load(path)


@pytest.mark.parametrize("kind", KINDS)
def test_adapter_file(tiny_study, tmp_path, kind):
    import shutil

    path = tmp_path / "memory_lm.safetensors"
    shutil.copy(tiny_study.adapter_file("memory"), path)
    bad = damage(path, kind)
    model = tiny_study.load_lm("none")
    with pytest.raises(ArtifactError, match=str(path)):
        model.load_adapters(path)
    assert path.read_bytes() == bad


def test_saving_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint whole."""
    save_checkpoint({"step": 1}, tmp_path / "c.pt")

    def crash(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2}, tmp_path / "c.pt")
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "c.pt") == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]                # no temporary left behind
