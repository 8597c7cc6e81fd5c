"""REINFORCE for memory writing, readable top to bottom.

The policy is :class:`~agents.networks.MemoryWriter`: a tanh-squashed Gaussian over the whole
n_slots x slot_dim memory (640 numbers in the study). Plain REINFORCE does not learn such
high-dimensional Gaussian actions, so this one adds what makes it work:

* a learned value baseline (the advantage is return minus V(s)), bootstrapped at the rollout end;
* advantage normalization over the batch;
* an entropy bonus, a bounded log-std (std in [0.02, 1], the original agent's range);
* gradient clipping; AdamW (lr 3e-5 by default, the study's).

It steps the natively batched VectorEnv (one LM forward per step for all N documents).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ltm_gym.core import atomic_write, check, choose_device, from_dict, load_checkpoint, seed_everything

from .base import EpisodeTracker, RunLogger

from .networks import MemoryWriter, WriterConfig, gaussian_entropy, squashed_log_prob, squashed_sample


@dataclass
class ReinforceConfig:
    lr: float = 3e-5
    """AdamW learning rate (the study's 3e-5)."""
    gamma: float = 0.9
    """Discount of the returns-to-go."""
    n_steps: int = 8
    """Env steps per env between updates."""
    ent_coef: float = 1e-3
    vf_coef: float = 0.5
    max_grad_norm: float = 1.0
    normalize_advantage: bool = True
    weight_decay: float = 0.0
    writer: WriterConfig = field(default_factory=WriterConfig)
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(0 <= self.gamma <= 1, "gamma", self.gamma, "in [0, 1]")
        check(self.n_steps >= 1, "n_steps", self.n_steps, ">= 1")
        check(self.ent_coef >= 0, "ent_coef", self.ent_coef, ">= 0")
        check(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "> 0")


# ---------------------------------------------------------------------- the pieces, each tested
def returns_to_go(rewards: torch.Tensor, dones: torch.Tensor, gamma: float,
                  bootstrap: torch.Tensor | None = None) -> torch.Tensor:
    """G_t = r_t + gamma (1 - done_t) G_{t+1}; rewards/dones (T, N); G_T = ``bootstrap`` (N) or 0."""
    T = rewards.shape[0]
    out = torch.zeros_like(rewards)
    running = bootstrap if bootstrap is not None else torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        running = rewards[t] + gamma * (1.0 - dones[t].float()) * running
        out[t] = running
    return out


def advantages(returns: torch.Tensor, values: torch.Tensor, normalize: bool) -> torch.Tensor:
    adv = returns - values
    if normalize and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    return adv


def reinforce_loss(log_prob: torch.Tensor, adv: torch.Tensor, entropy: torch.Tensor, values: torch.Tensor,
                   returns: torch.Tensor, ent_coef: float, vf_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """-E[A log pi] - ent_coef H + vf_coef (G - V)^2; the advantage carries no gradient."""
    policy = -(adv.detach() * log_prob).mean()
    value = ((returns - values) ** 2).mean()
    ent = entropy.mean()
    loss = policy - ent_coef * ent + vf_coef * value
    return loss, {"policy_loss": float(policy.detach()), "value_loss": float(value.detach()), "entropy": float(ent.detach())}


# ---------------------------------------------------------------------- the agent
def to_tensors(obs: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, device=device) for k, v in obs.items()}


class ReinforceAgent:
    """An :class:`agents.base.Agent` on a SAME_STEP VectorEnv."""

    file_name = "agent.pt"

    @classmethod
    def from_config(cls, env: Any, config: dict[str, Any], run_dir: str | Path | None = None, seed: int = 0,
                    device: str = "auto") -> "ReinforceAgent":
        """The agent with hyper-parameters ``config`` (fields of :class:`ReinforceConfig`)."""
        return cls(env, from_dict(ReinforceConfig, {"seed": seed, "device": device, **config}), run_dir=run_dir)

    def __init__(self, env: Any, config: ReinforceConfig | None = None, run_dir: str | Path | None = None) -> None:
        from gymnasium.vector import AutoresetMode

        self.cfg = config or ReinforceConfig()
        self.cfg.validate()
        if env is not None and env.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise ValueError("ReinforceAgent needs a vector env with autoreset mode SAME_STEP "
                             "(gymnasium.make_vec(..., vectorization_mode='vector_entry_point'))")
        self.env = env
        seed_everything(self.cfg.seed)
        self.device = choose_device(self.cfg.device)
        self.policy = MemoryWriter(env.single_observation_space, self.cfg.writer).to(self.device)
        if tuple(env.single_action_space.shape) != (self.policy.encoder.n_slots, self.policy.encoder.slot_dim):
            raise ValueError(f"ReinforceAgent writes the whole memory; action space {env.single_action_space.shape} "
                             "is not (n_slots, slot_dim) (action_mode='slot' is for the SB3 agents)")
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.num_timesteps = 0
        self.updates = 0
        self.logger = RunLogger(run_dir)
        self._obs = None
        self.episodes = EpisodeTracker(env.num_envs)

    # .................................................................. acting
    @torch.no_grad()
    def predict(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> tuple[np.ndarray, None]:
        """Actions for a batch of observations (or one observation), SB3-style ``(action, state)``."""
        single = obs["memory"].ndim == 2
        batch = {k: (v[None] if single else v) for k, v in obs.items()}
        mean, log_std, _ = self.policy(to_tensors(batch, self.device))
        action, _ = squashed_sample(mean, log_std, deterministic)
        action = action.cpu().numpy().astype(np.float32)
        return (action[0] if single else action), None

    @property
    def episode_returns(self) -> list[float]:
        return self.episodes.returns

    # .................................................................. learning
    def collect(self) -> dict[str, torch.Tensor]:
        """n_steps steps of every env: observations, pre-tanh samples, rewards, dones, bootstrap obs."""
        env, n = self.env, self.cfg.n_steps
        if self._obs is None:
            self._obs, _ = env.reset(seed=self.cfg.seed)
        obs_buf: list[dict[str, np.ndarray]] = []
        u_buf, rew_buf, done_buf = [], [], []
        for _ in range(n):
            obs_t = to_tensors(self._obs, self.device)
            with torch.no_grad():
                mean, log_std, _ = self.policy(obs_t)
                u = mean + log_std.exp() * torch.randn_like(mean)
            next_obs, reward, term, trunc, info = env.step(torch.tanh(u).cpu().numpy())
            # a truncated episode did not end: its return continues with the value of its last state
            boot = torch.zeros(env.num_envs)
            if trunc.any():
                final = [info["final_obs"][i] for i in np.flatnonzero(trunc)]
                stacked = {k: np.stack([f[k] for f in final]) for k in final[0]}
                with torch.no_grad():
                    boot[torch.as_tensor(np.flatnonzero(trunc))] = self.policy(to_tensors(stacked, self.device))[2].cpu()
            obs_buf.append({k: v.copy() for k, v in self._obs.items()})
            u_buf.append(u)
            rew_buf.append(torch.as_tensor(reward, dtype=torch.float32) + self.cfg.gamma * boot)
            done_buf.append(torch.as_tensor(term | trunc))
            self.episodes.add(reward, term | trunc)
            self._obs = next_obs
            self.num_timesteps += env.num_envs
        with torch.no_grad():
            last_value = self.policy(to_tensors(self._obs, self.device))[2].cpu()
        obs = {k: torch.as_tensor(np.stack([o[k] for o in obs_buf])) for k in obs_buf[0]}   # (T, N, ...)
        return {"obs": obs, "u": torch.stack(u_buf).cpu(), "rewards": torch.stack(rew_buf),
                "dones": torch.stack(done_buf), "last_value": last_value}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        T, N = batch["rewards"].shape
        flat_obs = {k: v.reshape(T * N, *v.shape[2:]).to(self.device) for k, v in batch["obs"].items()}
        mean, log_std, values = self.policy(flat_obs)
        u = batch["u"].reshape(T * N, *batch["u"].shape[2:]).to(self.device)
        log_prob = squashed_log_prob(u, mean, log_std)
        returns = returns_to_go(batch["rewards"], batch["dones"], self.cfg.gamma, batch["last_value"]).reshape(-1)
        returns = returns.to(self.device)
        adv = advantages(returns, values.detach(), self.cfg.normalize_advantage)
        loss, stats = reinforce_loss(log_prob, adv, gaussian_entropy(log_std), values, returns,
                                     self.cfg.ent_coef, self.cfg.vf_coef)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stats["grad_norm"] = float(nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.max_grad_norm))
        self.optimizer.step()
        self.updates += 1
        stats["std_mean"] = float(log_std.detach().exp().mean())
        stats["reward_mean"] = float(batch["rewards"].mean())
        return stats

    def learn(self, total_steps: int, callback: Callable[["ReinforceAgent", dict], bool | None] | None = None,
              progress: bool = False) -> "ReinforceAgent":
        """Train until ``total_steps`` env steps (summed over envs) have been taken in all.
        ``callback(agent, stats)`` runs after every update; returning False stops."""
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=min(self.num_timesteps, total_steps), disable=not progress,
                   desc="reinforce", dynamic_ncols=True)
        start = time.time()
        while self.num_timesteps < total_steps:
            before = self.num_timesteps
            stats = self.update(self.collect())
            bar.update(self.num_timesteps - before)
            if self.episodes.recent() is not None:
                stats["episodic_return"] = self.episodes.recent()
            losses = ("policy_loss", "value_loss", "entropy", "grad_norm")
            charts = ("reward_mean", "episodic_return", "std_mean")
            self.logger.scalars({f"losses/{k}": v for k, v in stats.items() if k in losses}, self.num_timesteps)
            self.logger.scalars({f"charts/{k}": v for k, v in stats.items() if k in charts}, self.num_timesteps)
            self.logger.scalars({"charts/steps_per_second": self.num_timesteps / max(1e-9, time.time() - start)},
                                self.num_timesteps)
            bar.set_postfix(reward=f"{stats['reward_mean']:.3f}")
            if callback is not None and callback(self, stats) is False:
                break
        bar.close()
        self.logger.flush()
        return self

    # .................................................................. persistence
    def save(self, path: str | Path) -> Path:
        state = {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "num_timesteps": self.num_timesteps, "updates": self.updates,
                 "episode_returns": self.episode_returns, "rng": torch.get_rng_state()}
        return atomic_write(Path(path), lambda tmp: torch.save(state, tmp))

    def load(self, path: str | Path) -> "ReinforceAgent":
        state = load_checkpoint(path, self.device)
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.num_timesteps, self.updates = state["num_timesteps"], state["updates"]
        self.episodes.returns = list(state["episode_returns"])
        torch.set_rng_state(state["rng"])
        return self

    def init_from(self, path: str | Path) -> None:
        """The policy weights of another REINFORCE run or of a differentiable writer (``writer.pt``)."""
        self.policy.load_state_dict(load_checkpoint(path, self.device)["policy"])
