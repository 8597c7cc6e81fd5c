"""SB3 policies for the selection action (``action_mode="select"``), built around one idea: what
makes a candidate (a segment position or a previous slot) worth storing is the same wherever it
stands, so one small network shared by every candidate scores it.

* :class:`CandidateHead` maps each candidate's features to its output (a score, a logit, a log std);
* :class:`SelectionActorCriticPolicy`: PPO/A2C with that head as the actor;
* :data:`SELECTION_POLICIES`: SAC, TD3, DDPG and TQC with that head as the actor and an additive
  critic, :class:`CandidateCritic`: Q(s, a) = sum over candidates of q(features_i, a_i, a_i - t),
  with t the score that the ``n_slots``-th best candidate has. The env keeps the top ``n_slots``
  scores, so a_i - t says whether candidate i is kept; a dense critic over all 74 features and
  scores must find that structure from the replay buffer alone.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from torch import nn
from sb3_contrib.tqc.policies import MultiInputPolicy as TQCPolicy
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.sac.policies import MultiInputPolicy as SACPolicy
from stable_baselines3.td3.policies import MultiInputPolicy as TD3Policy
from ltm_gym.core.errors import UserError


class CandidateHead(nn.Module):
    """A selection policy's outputs (B, C) from the extractor's per-candidate features (B, C * h):
    one small linear map shared by every candidate, plus a bias per candidate (where the keep and
    store priors go)."""

    def __init__(self, n_candidates: int, per_candidate: int, bias: float = 0.0) -> None:
        super().__init__()
        self.n, self.h = n_candidates, per_candidate
        self.score = nn.Linear(per_candidate, 1)
        nn.init.orthogonal_(self.score.weight, gain=0.01)       # SB3's start for action heads: near uniform
        nn.init.constant_(self.score.bias, bias)
        self.bias = nn.Parameter(torch.zeros(n_candidates))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.score(latent.view(latent.shape[0], self.n, self.h)).squeeze(-1) + self.bias


def n_candidates(action_space: spaces.Space) -> int:
    return action_space.n if isinstance(action_space, spaces.MultiBinary) else int(action_space.shape[0])


def per_candidate(features_dim: int, n: int, what: str) -> int:
    if features_dim % n:
        raise UserError(f"candidate_head: {features_dim} {what} features are not {n} candidates' "
                        f"(its net_arch must leave the {what} empty)")
    return features_dim // n


class SelectionActorCriticPolicy(MultiInputActorCriticPolicy):
    """PPO/A2C's policy for selection envs with ``candidate_head``: the actor is a
    :class:`CandidateHead` on the per-candidate features (its MLP is empty), the critic SB3's MLP."""

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        n = n_candidates(self.action_space)
        self.action_net = CandidateHead(n, per_candidate(self.mlp_extractor.latent_dim_pi, n, "actor"))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


class CandidateCritic(nn.Module):
    """One Q network (or TQC's quantile network) of an off-policy critic, in SB3's calling
    convention (its input is the features (B, C * h) and the action (B, C) concatenated): each
    candidate's features, its score and its margin over the ``n_keep``-th best score go through one
    MLP shared by every candidate; the candidates' outputs are summed."""

    def __init__(self, n: int, h: int, n_keep: int, out: int, hidden: list[int]) -> None:
        super().__init__()
        self.n, self.h, self.n_keep = n, h, n_keep
        layers: list[nn.Module] = []
        width = h + 2
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.net = nn.Sequential(*layers, nn.Linear(width, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x[:, :self.n * self.h].view(-1, self.n, self.h)
        scores = x[:, self.n * self.h:]
        threshold = scores.topk(self.n_keep, dim=1).values[:, -1:]
        per = torch.cat([features, scores.unsqueeze(-1), (scores - threshold).unsqueeze(-1)], dim=-1)
        return self.net(per).sum(1)


class _SelectionOffPolicy:
    """Mixed into an off-policy algorithm's ``MultiInputPolicy``: the actor's heads become
    :class:`CandidateHead` (mean and log std for SAC/TQC, the tanh-squashed action for TD3/DDPG),
    each critic network a :class:`CandidateCritic`. Needs ``net_arch={"pi": [], "qf": [...]}``: the
    actor reads the extractor's per-candidate features directly; ``qf`` sizes the shared critic MLP."""

    def make_actor(self, features_extractor: Any = None) -> Any:
        actor = super().make_actor(features_extractor)
        n = n_candidates(self.action_space)
        h = per_candidate(actor.features_dim, n, "actor")
        if hasattr(actor, "log_std"):                   # SAC, TQC: a squashed Gaussian
            actor.mu = CandidateHead(n, h)
            actor.log_std = CandidateHead(n, h, bias=float(self.actor_kwargs.get("log_std_init", 0.0)))
        else:                                           # TD3, DDPG: a deterministic squashed score
            actor.mu = nn.Sequential(CandidateHead(n, h), nn.Tanh())
        return actor.to(self.device)

    def make_critic(self, features_extractor: Any = None) -> Any:
        critic = super().make_critic(features_extractor)
        n = n_candidates(self.action_space)
        h = per_candidate(critic.features_extractor.features_dim, n, "critic")
        n_keep = int(self.observation_space["memory"].shape[0])
        hidden = list(self.critic_kwargs["net_arch"])
        for i, old in enumerate(critic.q_networks):
            out = [m for m in old.modules() if isinstance(m, nn.Linear)][-1].out_features
            new = CandidateCritic(n, h, n_keep, out, hidden)
            critic.add_module(f"qf{i}", new)
            critic.q_networks[i] = new
        return critic.to(self.device)

    @property
    def action_head(self) -> CandidateHead:
        mu = self.actor.mu
        return mu[0] if isinstance(mu, nn.Sequential) else mu


class SelectionSACPolicy(_SelectionOffPolicy, SACPolicy):
    """SAC's policy for selection envs."""


class SelectionTQCPolicy(_SelectionOffPolicy, TQCPolicy):
    """TQC's policy for selection envs."""


class SelectionTD3Policy(_SelectionOffPolicy, TD3Policy):
    """TD3's (and DDPG's) policy for selection envs."""


SELECTION_POLICIES = {"sac": SelectionSACPolicy, "tqc": SelectionTQCPolicy, "td3": SelectionTD3Policy,
                      "ddpg": SelectionTD3Policy, "ppo": SelectionActorCriticPolicy, "a2c": SelectionActorCriticPolicy}
"""Each SB3 algorithm's policy class for selection envs with ``candidate_head``."""
