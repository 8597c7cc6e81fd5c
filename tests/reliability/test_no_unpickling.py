"""Files a user may get from elsewhere (checkpoints, SB3 agents, replay buffers) are loaded without
unpickling: a file that would run code when unpickled runs none, and the package's own files
still load exactly."""

import base64
import json
import zipfile

import numpy as np
import pytest
import torch

import ltm_gym.agents as agents
from ltm_gym.core import ArtifactError, load_checkpoint, save_checkpoint
from tests.agents.test_registry import SMALL


class Payload:
    """Unpickling it would create ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"step": 1, "evil": Payload(str(marker))}, tmp_path / "c.pt")
    with pytest.raises(ArtifactError, match="c.pt"):
        load_checkpoint(tmp_path / "c.pt")
    assert not marker.exists()
    state = {"rng": np.random.get_state(), "obs": {"x": np.arange(4, dtype=np.float32)}, "n": np.int64(3),
             "gen": np.random.default_rng(0).bit_generator.state, "t": torch.ones(2)}
    back = load_checkpoint(save_checkpoint(state, tmp_path / "ok.pt"))      # what the package saves loads
    assert np.array_equal(back["rng"][1], state["rng"][1]) and back["n"] == 3 and back["gen"] == state["gen"]


def test_an_sb3_agent_and_its_replay_buffer_load_without_unpickling(backend, tmp_path):
    from ltm_gym.envs import LLMMemoryVectorEnv

    env = LLMMemoryVectorEnv(2, backend=backend)
    agent = agents.make("sac", env, device="cpu", seed=0, **SMALL["sac"])
    agent.learn(40)
    path = agent.save(tmp_path / "agent.zip")
    replay = next(tmp_path.glob("agent.replay-*.npz"))
    twin = agents.make("sac", LLMMemoryVectorEnv(2, backend=backend), device="cpu", seed=5, **SMALL["sac"])
    twin.load(path, restore_env=True)
    for name in ("observations", "actions", "rewards"):
        a, b = getattr(agent.model.replay_buffer, name), getattr(twin.model.replay_buffer, name)
        assert all(np.array_equal(a[k], b[k]) for k in a) if isinstance(a, dict) else np.array_equal(a, b)
    assert twin.model.replay_buffer.pos == agent.model.replay_buffer.pos

    marker = tmp_path / "ran"
    evil = base64.b64encode(__import__("pickle").dumps(Payload(str(marker)))).decode()
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    data = json.loads(files["data"])
    data["observation_space"] = {":type:": "<class 'x'>", ":serialized:": evil}
    data["ep_info_buffer"] = {":type:": "<class 'x'>", ":serialized:": evil}
    files["data"] = json.dumps(data).encode()
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    twin.load(bad)
    assert not marker.exists()
    obs = env.reset(seed=1)[0]
    assert np.array_equal(twin.predict(obs)[0], agent.predict(obs)[0])

    np.savez(replay, observations=np.array([Payload(str(marker))], dtype=object))
    with pytest.raises(ArtifactError, match="replay"):
        twin.load(path, restore_env=True)
    assert not marker.exists()
