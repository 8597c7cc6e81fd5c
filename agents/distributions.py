"""The policies' distributions as small pure functions (each tested).

* Plackett-Luce over candidates (``action_mode="select"``): an ordered choice of k of C
  candidates, sampled with the Gumbel-top-k trick (Kool et al., 2019, "Stochastic Beams and Where
  to Find Them"); its mode is the top k of the logits.
* The tanh-squashed Gaussian of the continuous writer lives in :mod:`ltm_gym.agents.networks`.
"""

from __future__ import annotations

import math

import torch


def gumbel_top_k(logits: torch.Tensor, k: int, generator: torch.Generator | None = None,
                 rows: tuple[int, int] | None = None) -> torch.Tensor:
    """An ordered sample (..., k) of k distinct candidates from Plackett-Luce(logits (..., B, C)).

    ``rows`` (offset, total): these B rows are rows offset .. offset + B of a batch of ``total``
    (one rank's slice): the noise is drawn for all ``total`` rows and sliced, so each row gets
    what it would get in one process stepping the whole batch."""
    shape = logits.shape if rows is None else (*logits.shape[:-2], rows[1], logits.shape[-1])
    u = torch.rand(shape, generator=generator, device=logits.device if generator is None else "cpu")
    if rows is not None:
        u = u[..., rows[0]:rows[0] + logits.shape[-2], :]
    gumbel = -torch.log((-torch.log(u.to(logits.device).clamp(1e-20, 1.0))).clamp_min(1e-20))
    return (logits + gumbel).topk(k, dim=-1).indices


def plackett_luce_log_prob(logits: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """log P(order) = sum_i [l_{o_i} - logsumexp(l over the candidates not yet chosen)]:
    logits (..., C), order (..., k) -> (...)."""
    chosen = logits.gather(-1, order)                                             # (..., k)
    mask = torch.zeros_like(logits, dtype=torch.bool)
    total = torch.zeros(logits.shape[:-1], dtype=logits.dtype, device=logits.device)
    for i in range(order.shape[-1]):
        rest = logits.masked_fill(mask, -math.inf)
        total = total + chosen[..., i] - torch.logsumexp(rest, dim=-1)
        mask = mask.scatter(-1, order[..., i : i + 1], True)
    return total


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) (the first choice of Plackett-Luce): (..., C) -> (...)."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def selection_scores(order: torch.Tensor, n_candidates: int) -> torch.Tensor:
    """The env action that stores exactly the candidates ``order`` (..., k): 1 for chosen, -1 else."""
    out = torch.full((*order.shape[:-1], n_candidates), -1.0, device=order.device)
    return out.scatter(-1, order, 1.0)


def leave_one_out(rewards: torch.Tensor) -> torch.Tensor:
    """r_k - mean_{j != k} r_j over the first dim (K >= 2 samples of the same state)."""
    K = rewards.shape[0]
    if K < 2:
        raise ValueError(f"a leave-one-out baseline needs >= 2 samples per state, got {K}")
    return rewards - (rewards.sum(0, keepdim=True) - rewards) / (K - 1)
