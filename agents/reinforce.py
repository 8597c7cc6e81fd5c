"""REINFORCE for memory writing, readable top to bottom.

Two policies, chosen by the env's action space:

* ``action_mode="select"``: :class:`~agents.networks.SelectionScorer`, a Plackett-Luce policy over
  the segment's positions and the previous slots (Gumbel-top-k sampling; deterministic = top-k).
  RL chooses WHERE; the env's fixed code says WHAT a slot holds.
* ``full``: :class:`~agents.networks.MemoryWriter`, the study's tanh-squashed Gaussian over the
  whole n_slots x slot_dim memory, started "write little" (mean near 0, std at the bottom of its
  range) so that its first memories lie where the reader was trained; with ``imitate_steps`` its
  mean is first cloned from the hypothesis-2 memory (:mod:`ltm_gym.agents.imitation`), the one memory its
  reader learned to read.

What makes it learn (measured on the tiny default, see the README):

* group sampling: K actions per state, scored in ONE batched LM forward without advancing the env
  (``env.score_actions``), each with the leave-one-out mean of the other K - 1 as its baseline;
* credit, two rollouts (``rollout``):

  - ``step`` (the default): the K candidates of a state differ in one action and are scored by
    their immediate reward; ``gamma`` adds the executed trajectory's discounted future (batch-mean
    baseline) to the executed sample. With full overwrite and facts asked one segment later an
    action only changes its own reward, so gamma 0 is right there (the ``recall-d1`` task);
  - ``episode``: K whole episodes of the SAME document are rolled out side by side (the vector
    env's envs in groups of K) and each action is judged by its reward-to-go, discounted by
    ``gamma``, against the mean reward-to-go of the other K - 1 episodes at the same step (RLOO /
    GRPO over whole rollouts, as MemAgent trains its memory). Every reward an action influences
    reaches it: storing a fact that is asked d segments later and keeping it until then;
* advantage normalization, an entropy bonus, gradient clipping, AdamW.

It steps the natively batched VectorEnv (one LM forward per step for all N documents). Under
torchrun each rank steps its own slice of the N envs (rows rank * N / R ..) with the generators a
single process would give them, draws its sampling noise as a single process would for its rows,
and the policy's gradients are averaged over ranks (advantages normalized over all ranks): R ranks
train the policy one process stepping all N envs would (same documents, same samples).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ltm_gym.core import ArtifactError, atomic_write, check, choose_device, from_dict, load_checkpoint, seed_everything
from ltm_gym.core import distributed
from ltm_gym.core.distributed import (DistInfo, agree_max, all_reduce_grads, all_reduce_sum, broadcast_parameters,
                                      gather_objects, global_mean, global_std)
from ltm_gym.envs.selection import is_selection

from .base import Callback, EpisodeTracker, RunLogger, check_steps, env_state, load_reader, save_reader
from .distributions import (categorical_entropy, gumbel_top_k, leave_one_out, plackett_luce_log_prob,
                            selection_scores, spaced_top_k)
from .networks import (LOG_STD_MIN, MemoryWriter, SelectionScorer, WriterConfig, check_window_tokens, gaussian_entropy,
                       squashed_log_prob)
from ltm_gym.core.errors import UserError


ROLLOUTS = ("step", "episode")


@dataclass
class ReinforceConfig:
    lr: float = 1e-3
    """AdamW learning rate (the study used 3e-5 on a GPU with ruGPT3small)."""
    group_size: int = 4
    """K: actions sampled and scored per state (leave-one-out baseline); 1 = batch-mean baseline."""
    gamma: float = 0.0
    """Discount of the executed trajectory's future rewards (0: each action is judged by its own)."""
    n_steps: int = 1
    """Env steps per env between updates (``rollout: step``)."""
    rollout: str = "step"
    """``step``: K candidates per state, scored by their immediate reward; ``episode``: K whole
    episodes per document (num_envs a multiple of K), each action judged by its reward-to-go."""
    ent_coef: float = 1e-3
    max_grad_norm: float = 1.0
    normalize_advantage: bool = True
    weight_decay: float = 0.0
    init_std: float = 0.02
    """Continuous writer: the Gaussian's initial std ("write little": memories near 0 at first)."""
    keep_prior: float = 0.0
    """Select mode: the initial logit of keeping each previous slot (tokens start at 0): > 0 starts
    by keeping part of the memory, so that facts survive several segments by chance at first and
    their later answers can reward storing them (log(L / m) ~ 1.9: slots and tokens about even)."""
    imitate_steps: int = 0
    """Continuous writer: Adam steps of behaviour cloning onto the hypothesis-2 memory before the
    first update (:mod:`ltm_gym.agents.imitation`); 0: none, RL starts from writing little."""
    writer: WriterConfig = field(default_factory=WriterConfig)
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.group_size >= 1, "group_size", self.group_size, ">= 1")
        check(0 <= self.gamma <= 1, "gamma", self.gamma, "in [0, 1]")
        check(self.n_steps >= 1, "n_steps", self.n_steps, ">= 1")
        check(self.rollout in ROLLOUTS, "rollout", self.rollout, ", ".join(ROLLOUTS))
        check(self.ent_coef >= 0, "ent_coef", self.ent_coef, ">= 0")
        check(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "> 0")
        check(self.imitate_steps >= 0, "imitate_steps", self.imitate_steps, ">= 0")
        check(math.exp(LOG_STD_MIN) <= self.init_std <= 1, "init_std", self.init_std, f"in [{math.exp(LOG_STD_MIN):.2f}, 1]")


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


def group_advantages(rewards: torch.Tensor, executed_future: torch.Tensor, normalize: bool,
                     dist: DistInfo = DistInfo()) -> torch.Tensor:
    """Advantages (K, B) of K sampled actions per state: the leave-one-out advantage of each
    immediate reward (batch mean for K = 1), plus, for the executed sample 0, its discounted
    future return minus the batch mean of those. Batch means and the normalizing std are over
    every rank's states (``dist``)."""
    adv = leave_one_out(rewards) if rewards.shape[0] > 1 else rewards - global_mean(rewards, dist)
    adv[0] += executed_future - global_mean(executed_future, dist)
    if normalize and adv.numel() * dist.world_size > 1:
        adv = adv / (global_std(adv, dist) + 1e-8)
    return adv


def episode_advantages(rewards: torch.Tensor, active: torch.Tensor, group_size: int, gamma: float,
                       normalize: bool, dist: DistInfo = DistInfo()) -> torch.Tensor:
    """Advantages (T, N) of whole-episode group rollouts: rewards/active (T, N), envs in groups of
    ``group_size`` consecutive columns that roll out the same document. Each action's discounted
    reward-to-go minus the mean reward-to-go of the other episodes of its group still running at
    that step (the batch mean of the step when the group has no other); 0 where not ``active``.
    Step means and normalization are over every rank's envs (``dist``; T the same on all)."""
    T, N = rewards.shape
    act = active.float()
    togo = returns_to_go(rewards * act, ~active, gamma)                           # stops at the episode's end
    K = group_size
    g_ret, g_act = togo.view(T, N // K, K), act.view(T, N // K, K)
    others = (g_act.sum(-1, keepdim=True) - g_act).clamp(min=0)
    loo = ((g_ret * g_act).sum(-1, keepdim=True) - g_ret * g_act) / others.clamp(min=1)
    step_sum = all_reduce_sum(torch.cat([(togo * act).sum(1, keepdim=True), act.sum(1, keepdim=True)], 1), dist)
    step_mean = step_sum[:, :1] / step_sum[:, 1:].clamp(min=1)
    base = torch.where(others > 0, loo, step_mean.view(T, 1, 1).expand_as(loo))
    adv = (g_ret - base).view(T, N) * act
    if normalize and int(all_reduce_sum(act.sum(), dist)) > 1:
        on = adv[active]
        adv = (adv - global_mean(on, dist) * act) / (global_std(on, dist) + 1e-8)
    return adv


def reinforce_loss(log_prob: torch.Tensor, adv: torch.Tensor, entropy: torch.Tensor,
                   ent_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """-E[A log pi] - ent_coef H; the advantage carries no gradient."""
    policy = -(adv.detach() * log_prob).mean()
    ent = entropy.mean()
    return policy - ent_coef * ent, {"policy_loss": float(policy.detach()), "entropy": float(ent.detach())}


def to_tensors(obs: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, device=device) for k, v in obs.items()}


def env_spacing(env: Any) -> int:
    """The selection env's ``spacing`` (its config's; 0 for an env without one)."""
    return int(getattr(getattr(env, "config", None), "spacing", 0) or 0)


# ---------------------------------------------------------------------- the two policies
class SelectionPolicy(nn.Module):
    """Plackett-Luce over candidates; a sample is the ordered choice (K, B, n_slots), its tokens the
    env's ``spacing`` apart (the rule by which the env keeps a selection)."""

    def __init__(self, obs_space, n_slots: int, cfg: ReinforceConfig, spacing: int = 0) -> None:
        super().__init__()
        self.net, self.n_slots = SelectionScorer(obs_space, cfg.writer), n_slots
        self.n_tokens, self.spacing = int(obs_space["tokens"].shape[-1]), spacing
        with torch.no_grad():
            self.net.keep_prior.fill_(cfg.keep_prior)

    def sample(self, obs: dict[str, torch.Tensor], K: int,
               rows: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """K samples for each of the B states; ``rows`` (offset, total): noise as for these rows of a
        batch of ``total`` (:func:`~agents.distributions.gumbel_top_k`)."""
        logits = self.net(obs)
        order = gumbel_top_k(logits.expand(K, *logits.shape), self.n_slots, rows=rows, n_tokens=self.n_tokens,
                             spacing=self.spacing)
        return selection_scores(order, logits.shape[-1]), order

    def log_prob_entropy(self, obs: dict[str, torch.Tensor], samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(obs)                                                    # (B, C)
        log_prob = plackett_luce_log_prob(logits.expand(samples.shape[0], *logits.shape), samples,
                                          n_tokens=self.n_tokens, spacing=self.spacing)
        return log_prob, categorical_entropy(logits)

    def mode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.net(obs)
        order = spaced_top_k(logits, self.n_slots, self.n_tokens, self.spacing)
        return selection_scores(order, logits.shape[-1])


class GaussianPolicy(nn.Module):
    """The study's writer; a sample is the pre-tanh Gaussian draw u (K, B, m, d), the action tanh(u)."""

    def __init__(self, obs_space, cfg: ReinforceConfig) -> None:
        super().__init__()
        self.net = MemoryWriter(obs_space, cfg.writer)
        with torch.no_grad():  # write little: mean ~ 0, std = init_std
            self.net.mean.weight.mul_(0.01)
            frac = (math.log(cfg.init_std) - LOG_STD_MIN) / (0.0 - LOG_STD_MIN)
            self.net.log_std.weight.mul_(0.01)
            self.net.log_std.bias.fill_(math.log(max(frac, 1e-4) / max(1 - frac, 1e-4)))

    def sample(self, obs: dict[str, torch.Tensor], K: int,
               rows: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """K samples for each of the B states; ``rows`` as in :meth:`SelectionPolicy.sample`."""
        mean, log_std, _ = self.net(obs)
        B = mean.shape[0]
        noise = torch.randn(K, B if rows is None else rows[1], *mean.shape[1:], device=mean.device)
        if rows is not None:
            noise = noise[:, rows[0]:rows[0] + B]
        u = mean + log_std.exp() * noise
        return torch.tanh(u), u

    def log_prob_entropy(self, obs: dict[str, torch.Tensor], samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std, _ = self.net(obs)
        K = samples.shape[0]
        logp = squashed_log_prob(samples.flatten(0, 1), mean.repeat(K, 1, 1), log_std.repeat(K, 1, 1))
        return logp.view(K, -1), gaussian_entropy(log_std)

    def mode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.tanh(self.net(obs)[0])


# ---------------------------------------------------------------------- the agent
class ReinforceAgent:
    """An :class:`ltm_gym.agents.base.Agent` on a SAME_STEP VectorEnv."""

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
        if env is None or env.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise UserError("ReinforceAgent needs a vector env with autoreset mode SAME_STEP "
                            "(gymnasium.make_vec(..., vectorization_mode='vector_entry_point'))")
        self.env = env
        seed_everything(self.cfg.seed)
        self.device = choose_device(self.cfg.device)
        obs_space, act_shape = env.single_observation_space, tuple(env.single_action_space.shape)
        n_slots, slot_dim = obs_space["memory"].shape
        if act_shape == (n_slots, slot_dim):
            self.policy: nn.Module = GaussianPolicy(obs_space, self.cfg)
        elif is_selection(obs_space, env.single_action_space):
            check_window_tokens(env, self.cfg.writer.window_tokens)
            self.policy = SelectionPolicy(obs_space, n_slots, self.cfg, spacing=env_spacing(env))
        else:
            raise UserError(f"ReinforceAgent writes the whole memory (action_mode='full') or selects "
                            f"(action_mode='select', tokens observed); action space {act_shape} is neither "
                            "(action_mode='slot' is for the SB3 agents)")
        if self.cfg.imitate_steps and not isinstance(self.policy, GaussianPolicy):
            raise UserError(f"imitate_steps={self.cfg.imitate_steps}: behaviour cloning is for the continuous "
                            "writer (action_mode='full'); use 0")
        if self.cfg.imitate_steps and "tokens" not in obs_space.spaces:
            raise UserError(f"imitate_steps={self.cfg.imitate_steps}: behaviour cloning reads token "
                            "observations (obs_mode='tokens')")
        self.policy.to(self.device)
        self.dist = distributed.current()
        """Under torchrun: this rank steps envs ``rows[0] ..`` of ``rows[1]`` (its env's num_envs each)."""
        n = env.num_envs
        self.rows = (self.dist.rank * n, self.dist.world_size * n) if self.dist.enabled else None
        self.total_envs = n * self.dist.world_size
        broadcast_parameters(list(self.policy.parameters()), self.dist)
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.num_timesteps = 0
        self.updates = 0
        self.logger = RunLogger(run_dir if self.dist.is_main else None)
        self._obs = None
        self.episodes = EpisodeTracker(env.num_envs)
        self.doc_rng = np.random.default_rng(self.cfg.seed)
        """Draws the documents of whole-episode rollouts (``rollout: episode``)."""
        if self.cfg.rollout == "episode" and env.num_envs > 1:          # (1 env: an agent built to act)
            self._check_episode_groups()

    @property
    def episode_returns(self) -> list[float]:
        return self.episodes.returns

    # .................................................................. acting
    @torch.no_grad()
    def predict(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> tuple[np.ndarray, None]:
        """Actions for a batch of observations (or one observation), SB3-style ``(action, state)``."""
        single = obs["memory"].ndim == 2
        batch = to_tensors({k: (v[None] if single else v) for k, v in obs.items()}, self.device)
        action = self.policy.mode(batch) if deterministic else self.policy.sample(batch, 1)[0][0]
        action = action.cpu().numpy().astype(np.float32)
        return (action[0] if single else action), None

    # .................................................................. learning
    def rollout_steps(self) -> tuple[int, str] | None:
        if self.cfg.rollout == "step":
            return self.cfg.n_steps * self.total_envs, f"{self.total_envs} envs x n_steps {self.cfg.n_steps}"
        lengths = getattr(self.env, "episode_lengths", None)
        if lengths is None or len(lengths) != 1:
            return None
        return self.total_envs * lengths[0], f"whole episodes of {lengths[0]} steps in {self.total_envs} envs"

    def collect(self) -> dict[str, Any]:
        """One rollout (``rollout``): :meth:`collect_steps` or :meth:`collect_episodes`."""
        return self.collect_episodes() if self.cfg.rollout == "episode" else self.collect_steps()

    def update(self, batch: dict[str, Any]) -> dict[str, float]:
        return self.update_episodes(batch) if self.cfg.rollout == "episode" else self.update_steps(batch)

    def collect_steps(self) -> dict[str, Any]:
        """n_steps steps of every env; at each, K sampled actions scored in one batched forward and
        the first one executed."""
        env, K = self.env, self.cfg.group_size
        if self._obs is None:
            self._obs, _ = env.reset(seed=self.cfg.seed + self._offset)
        obs_buf, sample_buf, score_buf, rew_buf, done_buf = [], [], [], [], []
        for _ in range(self.cfg.n_steps):
            with torch.no_grad():
                actions, samples = self.policy.sample(to_tensors(self._obs, self.device), K, self.rows)
            actions = actions.cpu().numpy().astype(np.float32)
            scores = env.score_actions(actions) if K > 1 else None
            next_obs, reward, term, trunc, _ = env.step(actions[0])
            scores = torch.as_tensor(scores if scores is not None else reward[None], dtype=torch.float32)
            obs_buf.append({k: v.copy() for k, v in self._obs.items()})
            sample_buf.append(samples.cpu())
            score_buf.append(scores)
            rew_buf.append(torch.as_tensor(reward, dtype=torch.float32))
            done_buf.append(torch.as_tensor(term | trunc))
            self.episodes.add(reward, term | trunc)
            self._obs = next_obs
            self.num_timesteps += self.total_envs
        obs = {k: torch.as_tensor(np.stack([o[k] for o in obs_buf])) for k in obs_buf[0]}   # (T, N, ...)
        return {"obs": obs, "samples": torch.stack(sample_buf, 1), "scores": torch.stack(score_buf, 1),
                "rewards": torch.stack(rew_buf), "dones": torch.stack(done_buf)}

    def update_steps(self, batch: dict[str, Any]) -> dict[str, float]:
        T, N = batch["rewards"].shape
        K = batch["scores"].shape[0]
        flat_obs = {k: v.reshape(T * N, *v.shape[2:]).to(self.device) for k, v in batch["obs"].items()}
        samples = batch["samples"].reshape(K, T * N, *batch["samples"].shape[3:]).to(self.device)
        log_prob, entropy = self.policy.log_prob_entropy(flat_obs, samples)       # (K, T N), (T N)
        future = torch.zeros(T, N)
        if self.cfg.gamma > 0:
            future = returns_to_go(batch["rewards"], batch["dones"], self.cfg.gamma) - batch["rewards"]
        adv = group_advantages(batch["scores"].reshape(K, T * N), future.reshape(-1), self.cfg.normalize_advantage,
                               self.dist)
        loss, stats = reinforce_loss(log_prob, adv.to(self.device), entropy, self.cfg.ent_coef)
        self._optimize(loss, stats)
        stats["reward_mean"] = float(global_mean(batch["rewards"], self.dist))
        stats["group_reward_mean"] = float(global_mean(batch["scores"], self.dist))
        return stats

    @property
    def _offset(self) -> int:
        """This rank's first env in the whole batch (0 in one process)."""
        return self.rows[0] if self.rows is not None else 0

    def collect_episodes(self) -> dict[str, Any]:
        """K whole episodes of each of num_envs / K documents, side by side: every env steps until
        its episode has ended once (an env that ends early steps on, masked out)."""
        env, K = self.env, self.cfg.group_size
        self._check_episode_groups()
        docs = self.doc_rng.integers(env.n_documents, size=self.total_envs // K).repeat(K).tolist()
        docs = docs[self._offset:self._offset + env.num_envs]                  # this rank's groups
        first = self.num_timesteps == 0 and self.updates == 0
        self._obs, _ = env.reset(seed=self.cfg.seed + self._offset if first else None, options={"documents": docs})
        obs_buf, sample_buf, rew_buf, act_buf = [], [], [], []
        running = np.ones(env.num_envs, dtype=bool)
        steps = 0
        while agree_max(int(running.any()), self.dist):        # every rank steps as long as any runs
            with torch.no_grad():
                actions, samples = self.policy.sample(to_tensors(self._obs, self.device), 1, self.rows)
            next_obs, reward, term, trunc, _ = env.step(actions[0].cpu().numpy().astype(np.float32))
            obs_buf.append({k: v.copy() for k, v in self._obs.items()})
            sample_buf.append(samples[0].cpu())
            rew_buf.append(torch.as_tensor(reward, dtype=torch.float32))
            act_buf.append(torch.as_tensor(running.copy()))
            self.episodes.add(np.where(running, reward, 0.0), (term | trunc) & running)
            steps += int(running.sum())
            running &= ~(term | trunc)
            self._obs = next_obs
        self.num_timesteps += int(all_reduce_sum(torch.tensor(steps), self.dist))
        self._obs = None                                   # the next rollout starts from new documents
        obs = {k: torch.as_tensor(np.stack([o[k] for o in obs_buf])) for k in obs_buf[0]}   # (T, N, ...)
        return {"obs": obs, "samples": torch.stack(sample_buf), "rewards": torch.stack(rew_buf),
                "active": torch.stack(act_buf)}

    def _check_episode_groups(self) -> None:
        """Whole-episode rollouts need num_envs a multiple of K and an env that takes the documents."""
        if self.env.num_envs % self.cfg.group_size:
            each = " on each rank" if self.dist.enabled else ""
            raise UserError(f"rollout 'episode' runs group_size={self.cfg.group_size} episodes per document: "
                            f"num_envs={self.env.num_envs}{each} must be a multiple of it")
        if not hasattr(self.env, "n_documents"):
            raise UserError("rollout 'episode' picks the documents of its episodes: it needs an env with "
                            "n_documents and reset(options={'documents': ...}) (LLMMemoryVectorEnv)")

    def _optimize(self, loss: torch.Tensor, stats: dict[str, float]) -> None:
        """One clipped AdamW step on ``loss`` (both rollouts)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        all_reduce_grads(list(self.policy.parameters()), self.dist)
        stats["grad_norm"] = float(nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.max_grad_norm))
        self.optimizer.step()
        self.updates += 1

    def update_episodes(self, batch: dict[str, Any]) -> dict[str, float]:
        active = batch["active"]
        adv = episode_advantages(batch["rewards"], active, self.cfg.group_size, self.cfg.gamma,
                                 self.cfg.normalize_advantage, self.dist)
        flat_obs = {k: v[active].to(self.device) for k, v in batch["obs"].items()}
        samples = batch["samples"][active][None].to(self.device)                 # (1, B, ...)
        log_prob, entropy = self.policy.log_prob_entropy(flat_obs, samples)
        loss, stats = reinforce_loss(log_prob[0], adv[active].to(self.device), entropy, self.cfg.ent_coef)
        if self.dist.enabled:   # ranks ran different numbers of actions: each weighs its share of the mean
            n = float(active.sum())
            loss = loss * (n * self.dist.world_size / float(all_reduce_sum(torch.tensor(n), self.dist)))
        self._optimize(loss, stats)
        rewards = batch["rewards"][active]
        stats["reward_mean"] = float(global_mean(rewards, self.dist))
        stats["group_reward_mean"] = float(global_mean((batch["rewards"] * active).sum(0), self.dist))
        return stats

    def learn(self, steps: int, callback: Callback | None = None, progress: bool = False) -> "ReinforceAgent":
        """Train ``steps`` more env steps (summed over envs; whole rollouts, so up to one rollout
        more). ``callback(agent, stats)`` runs after every update; returning False stops."""
        from ltm_gym.core.progress import progress_bar

        total_steps = self.num_timesteps + check_steps(steps)
        if steps and self.cfg.imitate_steps and self.updates == 0:
            self.imitate(progress)
        bar = progress_bar(total=total_steps, initial=self.num_timesteps,
                           disable=not (progress and self.dist.is_main), desc="reinforce", dynamic_ncols=True)
        start = time.time()
        while self.num_timesteps < total_steps:
            before = self.num_timesteps
            stats = self.update(self.collect())
            bar.update(self.num_timesteps - before)
            recent = self._recent_return()
            if recent is not None:
                stats["episodic_return"] = recent
            losses = ("policy_loss", "entropy", "grad_norm")
            self.logger.scalars({f"losses/{k}": v for k, v in stats.items() if k in losses}, self.num_timesteps)
            self.logger.scalars({f"charts/{k}": v for k, v in stats.items() if k not in losses}, self.num_timesteps)
            self.logger.scalars({"charts/steps_per_second": self.num_timesteps / max(1e-9, time.time() - start)},
                                self.num_timesteps)
            bar.set_postfix(reward=f"{stats['reward_mean']:.3f}", refresh=False)
            if callback is not None and callback(self, stats) is False:
                break
        bar.close()
        self.logger.flush()
        return self

    def _recent_return(self) -> float | None:
        """The recent episodes' mean return, over every rank's envs."""
        recent = self.episodes.recent()
        if not self.dist.enabled:
            return recent
        s = all_reduce_sum(torch.tensor([recent or 0.0, float(recent is not None)], dtype=torch.float64), self.dist)
        return float(s[0] / s[1]) if s[1] > 0 else None

    def imitate(self, progress: bool = False) -> tuple[float, float]:
        """Behaviour cloning of the hypothesis-2 memory (``imitate_steps``), before the first update;
        returns the relative squared error of the first and the last batch (also logged)."""
        from .imitation import imitate_hypothesis2

        scale = float(self.env.single_observation_space["memory"].high.max())
        first, last = imitate_hypothesis2(self.policy.net, self.env.backend, self.cfg.imitate_steps, scale,
                                          seed=self.cfg.seed, progress=progress)
        self.logger.scalars({"losses/imitation_first": first, "losses/imitation_last": last}, 0)
        print(f"behaviour cloning of the hypothesis-2 memory, {self.cfg.imitate_steps} steps: "
              f"relative squared error {first:.3f} -> {last:.3f}")
        return first, last

    # .................................................................. persistence
    def save(self, path: str | Path) -> Path:
        """The policy, optimizer, counters, RNG and the env's state (episodes, generators, current
        observation: a resumed run continues exactly); with a co-trained LLM-LTM (``lm_update``)
        also its read path as ``reader.safetensors`` beside ``path``."""
        own = {"episodes": self.episodes.state_dict(), "rng": torch.get_rng_state(), "env": env_state(self.env),
               "obs": self._obs}
        state = {"policy": self.policy.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "num_timesteps": self.num_timesteps, "updates": self.updates,
                 "doc_rng": self.doc_rng.bit_generator.state, **own}
        if self.dist.enabled:                      # rank 0 writes every rank's envs, episodes and RNG
            ranks = gather_objects(own, self.dist)
            if not self.dist.is_main:
                return Path(path)
            state.update(world_size=self.dist.world_size, ranks=ranks)
        save_reader(self.env, Path(path))
        return atomic_write(Path(path), lambda tmp: torch.save(state, tmp))

    def _policy_state(self, path: str | Path) -> dict[str, Any]:
        """The agent file's state, its policy weights checked against this agent's network."""
        state = load_checkpoint(path, self.device)
        if "policy" not in state:
            raise ArtifactError(path, "REINFORCE agent or writer file", KeyError("it has no 'policy' entry"))
        try:
            self.policy.net.load_state_dict(state["policy"])
        except RuntimeError as exc:
            raise ArtifactError(path, "policy that fits this agent (other writer settings or action_mode?)",
                                exc) from exc
        return state

    def load(self, path: str | Path, restore_env: bool = False) -> "ReinforceAgent":
        """The agent of ``path``; ``restore_env`` (resuming its run) also puts the env back where the
        run was, so the rest of the run is what it would have been without the interruption."""
        state = self._policy_state(path)
        saved_by = state.get("world_size", 1)
        if restore_env and saved_by != self.dist.world_size:
            how = f"torchrun --nproc_per_node={saved_by}" if saved_by > 1 else "one process (without torchrun)"
            raise UserError(f"{path} is a run of {saved_by} process(es) and this is {self.dist.world_size}: "
                            f"resume it as it ran, with {how} and the same --num-envs")
        self.optimizer.load_state_dict(state["optimizer"])
        self.num_timesteps, self.updates = state["num_timesteps"], state["updates"]
        own = state["ranks"][self.dist.rank] if restore_env and "ranks" in state else state
        if "episodes" in own:
            self.episodes.load_state_dict(own["episodes"])
        else:                                                         # files of earlier versions
            self.episodes.returns = list(own["episode_returns"])
        torch.set_rng_state(own["rng"])
        if "doc_rng" in state:
            self.doc_rng.bit_generator.state = state["doc_rng"]
        load_reader(self.env, Path(path))
        if restore_env and own.get("env") is not None and (own.get("obs") is not None
                                                           or self.cfg.rollout == "episode"):
            self.env.set_state(own["env"])
            self._obs = own["obs"]
        return self

    def init_from(self, path: str | Path) -> None:
        """The policy weights of another REINFORCE run or of a differentiable writer (``writer.pt``)."""
        self._policy_state(path)
