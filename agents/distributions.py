"""The policies' distributions as small pure functions (each tested).

* Plackett-Luce over candidates (``action_mode="select"``): an ordered choice of k of C
  candidates, sampled with the Gumbel-top-k trick (Kool et al., 2019, "Stochastic Beams and Where
  to Find Them"); its mode is the top k of the logits. With a ``spacing``, a chosen token (one of
  the first ``n_tokens`` candidates, a segment's positions) rules out the tokens within ``spacing``
  of it for the later choices (slots selected there would spell overlapping windows); the Gumbel
  perturbation, chosen greedily under that rule, still samples the sequential choice exactly (the
  argmax of a set of Gumbel-perturbed logits is independent of its value and of the values outside).
* The tanh-squashed Gaussian of the continuous writer lives in :mod:`ltm_gym.agents.networks`.
"""

from __future__ import annotations

import math

import torch
from ltm_gym.core.errors import UserError


def gumbel_top_k(logits: torch.Tensor, k: int, generator: torch.Generator | None = None,
                 rows: tuple[int, int] | None = None, n_tokens: int = 0, spacing: int = 0) -> torch.Tensor:
    """An ordered sample (..., k) of k distinct candidates from Plackett-Luce(logits (..., B, C)),
    chosen tokens more than ``spacing`` apart (:func:`spaced_top_k`).

    ``rows`` (offset, total): these B rows are rows offset .. offset + B of a batch of ``total``
    (one rank's slice): the noise is drawn for all ``total`` rows and sliced, so each row gets
    what it would get in one process stepping the whole batch."""
    shape = logits.shape if rows is None else (*logits.shape[:-2], rows[1], logits.shape[-1])
    u = torch.rand(shape, generator=generator, device=logits.device if generator is None else "cpu")
    if rows is not None:
        u = u[..., rows[0]:rows[0] + logits.shape[-2], :]
    gumbel = -torch.log((-torch.log(u.to(logits.device).clamp(1e-20, 1.0))).clamp_min(1e-20))
    return spaced_top_k(logits + gumbel, k, n_tokens, spacing)


def spaced_top_k(scores: torch.Tensor, k: int, n_tokens: int = 0, spacing: int = 0) -> torch.Tensor:
    """The k best of ``scores`` (..., C) chosen greedily, best first, where a chosen token (index <
    ``n_tokens``) rules out the tokens within ``spacing`` of it; ``spacing`` 0 is ``topk``. The
    candidates past the tokens (previous slots) are never ruled out, so k of them always suffice."""
    if spacing <= 0 or n_tokens <= 0:
        return scores.topk(k, dim=-1).indices
    position = torch.arange(scores.shape[-1], device=scores.device)
    blocked = torch.zeros_like(scores, dtype=torch.bool)
    order = []
    for _ in range(k):
        choice = scores.masked_fill(blocked, -math.inf).argmax(dim=-1, keepdim=True)
        order.append(choice)
        blocked = blocked | ruled_out(choice, position, n_tokens, spacing)
    return torch.cat(order, dim=-1)


def ruled_out(choice: torch.Tensor, position: torch.Tensor, n_tokens: int, spacing: int) -> torch.Tensor:
    """The candidates (..., C) that ``choice`` (..., 1) leaves: itself and, a token chosen, the
    tokens within ``spacing`` of it."""
    near = ((position - choice).abs() <= spacing) & (position < n_tokens) & (choice < n_tokens)
    return near | (position == choice)


def plackett_luce_log_prob(logits: torch.Tensor, order: torch.Tensor, n_tokens: int = 0,
                           spacing: int = 0) -> torch.Tensor:
    """log P(order) = sum_i [l_{o_i} - logsumexp(l over the candidates still allowed)]: logits
    (..., C), order (..., k) -> (...); a chosen token rules out the tokens within ``spacing``."""
    chosen = logits.gather(-1, order)                                             # (..., k)
    mask = torch.zeros_like(logits, dtype=torch.bool)
    position = torch.arange(logits.shape[-1], device=logits.device)
    total = torch.zeros(logits.shape[:-1], dtype=logits.dtype, device=logits.device)
    for i in range(order.shape[-1]):
        rest = logits.masked_fill(mask, -math.inf)
        total = total + chosen[..., i] - torch.logsumexp(rest, dim=-1)
        choice = order[..., i : i + 1]
        if spacing > 0 and n_tokens > 0:
            mask = mask | ruled_out(choice, position, n_tokens, spacing)
        else:
            mask = mask.scatter(-1, choice, True)
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
        raise UserError(f"a leave-one-out baseline needs >= 2 samples per state, got {K}")
    return rewards - (rewards.sum(0, keepdim=True) - rewards) / (K - 1)
