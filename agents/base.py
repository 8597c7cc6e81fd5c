"""What every memory-writing agent is, and the TensorBoard logger they share.

An :class:`Agent` (REINFORCE, every SB3 algorithm) is built by :func:`ltm_gym.agents.make` and has
``learn``, ``predict``, ``save``, ``load``, ``init_from`` and ``num_timesteps``; scripts, the
study pipeline and evaluation use nothing else, so no code outside an agent class branches on
the algorithm. Every agent logs ``charts/*`` (reward, episodic return) and its own ``losses/*``
through one :class:`RunLogger` under ``RUN_DIR/tb``.
"""

from __future__ import annotations

import json

from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from ltm_gym.envs import reader_training
from ltm_gym.core.errors import UserError

Callback = Callable[[Any, dict], "bool | None"]
"""``callback(agent, stats)`` after every update (REINFORCE) or rollout (SB3); False stops."""


@runtime_checkable
class Agent(Protocol):
    file_name: str
    """The agent's file in a run directory (``agent.pt``, ``agent.zip``)."""
    env: Any
    """The LLMMemory vector env it trains on (its backend holds the LM the agent writes for)."""
    episode_returns: list[float]

    @property
    def num_timesteps(self) -> int: ...

    def learn(self, steps: int, callback: Callback | None = None, progress: bool = False) -> "Agent":
        """Train ``steps`` more env steps (summed over envs), as SB3's ``learn`` does; on-policy
        agents stop after a whole rollout, so a call may take a few more."""

    def predict(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """Actions for one observation or a batch, SB3-style ``(action, state)``."""

    def rollout_steps(self) -> tuple[int, str] | None:
        """The env steps between two updates, summed over envs, and why (``learn`` ends on such a
        boundary), or None where they vary (episodes of different lengths)."""

    def save(self, path: str | Path) -> Path: ...

    def load(self, path: str | Path, restore_env: bool = False) -> "Agent":
        """The agent saved at ``path``; ``restore_env`` also restores the env's episodes and
        generators saved with it (resuming a run: it continues exactly)."""

    def init_from(self, path: str | Path) -> None:
        """Start from another run's weights (e.g. pre-trained on EmbeddingMimic-v0, hypothesis 1)."""


def check_steps(steps: int) -> int:
    """``learn``'s step count: a whole number >= 0 (0 trains nothing)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise UserError(f"learn({steps!r}): steps is a whole number of env steps >= 0, how many more to train")
    return int(steps)


class RunLogger:
    """TensorBoard scalars under ``run_dir/tb`` and rows of ``run_dir/metrics.jsonl`` (nothing when
    ``run_dir`` is None), opened lazily. A resumed run's first row drops the rows an interrupted
    one wrote at or after its step (they are written again)."""

    def __init__(self, run_dir: str | Path | None) -> None:
        self.run_dir = Path(run_dir) if run_dir else None
        self._writer = None

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.run_dir is None:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tb"))
            self._drop_rows_from(step)
        for k, v in values.items():
            self._writer.add_scalar(k, float(v), step)
        with open(self.run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({"step": int(step), **{k: float(v) for k, v in values.items()}}) + "\n")

    def _drop_rows_from(self, step: int) -> None:
        path = self.run_dir / "metrics.jsonl"
        if path.is_file():
            rows = [line for line in path.read_text().splitlines() if line.strip()]
            path.write_text("".join(line + "\n" for line in rows if json.loads(line).get("step", 0) < step))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()


class EpisodeTracker:
    """Episode returns of N envs from their per-step rewards and done flags."""

    def __init__(self, n: int) -> None:
        self.running = np.zeros(n)
        self.returns: list[float] = []

    def add(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        self.running += rewards
        for i in np.flatnonzero(dones):
            self.returns.append(float(self.running[i]))
            self.running[i] = 0.0

    def recent(self, n: int = 20) -> float | None:
        return float(np.mean(self.returns[-n:])) if self.returns else None

    def state_dict(self) -> dict[str, Any]:
        return {"running": self.running.copy(), "returns": list(self.returns)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.running, self.returns = np.asarray(state["running"], dtype=float).copy(), list(state["returns"])


def env_state(env: Any) -> dict[str, Any] | None:
    """The vector env's state for an exact resume (None for an env that cannot give one)."""
    get = getattr(env, "get_state", None)
    return get() if get is not None else None


READER_FILE = "reader.safetensors"


def reader_path(agent_path: Path) -> Path:
    return Path(agent_path).with_name(READER_FILE)


def save_reader(env: Any, agent_path: Path) -> None:
    """The co-trained read path of ``env``'s LLM-LTM (``lm_update=True``) beside the agent's file."""
    training = reader_training(env)
    if training is not None:
        training.save_reader(reader_path(agent_path))


def load_reader(env: Any, agent_path: Path) -> None:
    """Load the read path saved beside the agent's file (if any) into ``env``'s LLM-LTM, so the
    agent is evaluated with the reader it was co-trained with."""
    path = reader_path(agent_path)
    backend = getattr(getattr(env, "unwrapped", env), "backend", None)
    if backend is not None and path.is_file():
        backend.model.load_adapters(path)
        backend.model_changed()
