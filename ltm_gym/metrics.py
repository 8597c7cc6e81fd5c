"""Metrics of the study: cross-entropy, perplexity, top-k accuracy, recall on answer tokens,
prefix losses, per-position loss curves, mean +- std over seeds and bootstrap over documents."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from ltm_gym.core.errors import UserError

TOP_K = (5, 10, 20, 50, 100)


def prefix_losses(token_losses: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean loss of each prefix s[0:l] from one pass: ``token_losses`` (B, L), ``lengths`` (B, k)
    or (k,) with values in [1, L] -> (B, k). Equals k separate forwards on the prefixes for a
    causal LM, since token i's loss does not depend on tokens after it."""
    B, L = token_losses.shape
    lengths = torch.as_tensor(lengths, device=token_losses.device)
    if lengths.dim() == 1:
        lengths = lengths.expand(B, -1)
    if lengths.numel() and (lengths.min() < 1 or lengths.max() > L):
        raise UserError(f"prefix lengths must lie in [1, {L}], got [{int(lengths.min())}, {int(lengths.max())}]")
    cum = token_losses.cumsum(dim=1)
    return cum.gather(1, lengths - 1) / lengths.to(cum.dtype)


def target_ranks(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rank of each target among the logits (0 = the argmax): (...)."""
    tgt = logits.gather(-1, targets.unsqueeze(-1))
    return (logits > tgt).sum(-1)


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = TOP_K) -> dict[int, float]:
    ranks = target_ranks(logits, targets)
    return {k: float((ranks < k).float().mean()) for k in ks}


def perplexity(ce: float) -> float:
    return math.exp(ce) if ce < 700 else float("inf")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, seed: int = 0,
                 q: tuple[float, float] = (0.025, 0.975)) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (resampling e.g. documents)."""
    arr = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), size=(n_boot, len(arr)))].mean(1)
    lo, hi = np.quantile(means, q)
    return float(lo), float(hi)


@dataclass
class SegmentMetrics:
    """Accumulates per-token results of many segments; :meth:`summary` gives one table row."""

    ks: Sequence[int] = TOP_K
    loss_sum: float = 0.0
    tokens: int = 0
    hits: dict[int, int] = field(default_factory=dict)
    answer_loss_sum: float = 0.0
    answer_tokens: int = 0
    answer_hits: int = 0
    position_sum: torch.Tensor | None = None
    position_count: int = 0
    doc_losses: dict[object, list[float]] = field(default_factory=dict)
    doc_answers: dict[object, list[float]] = field(default_factory=dict)
    """Per document: [answer-token loss sum, answer tokens] (paired bootstraps of the answer CE)."""
    by_distance: dict[int, list[int]] = field(default_factory=dict)
    """Per fact distance: [exact recalls, answer tokens, facts held in memory when asked, answers
    whose holding is known] (task documents; held in select mode only)."""

    def add(self, logits: torch.Tensor, targets: torch.Tensor, losses: torch.Tensor,
            answer_mask: torch.Tensor | None = None, doc_ids: Sequence[object] | None = None) -> None:
        """logits (B, L, V), targets/losses (B, L), answer_mask (B, L) bool."""
        losses = losses.detach().float().cpu()
        ranks = target_ranks(logits.detach().float(), targets).cpu()
        self.loss_sum += float(losses.sum())
        self.tokens += losses.numel()
        for k in self.ks:
            self.hits[k] = self.hits.get(k, 0) + int((ranks < k).sum())
        if answer_mask is not None:
            m = answer_mask.cpu()
            self.answer_loss_sum += float(losses[m].sum())
            self.answer_tokens += int(m.sum())
            self.answer_hits += int((ranks[m] == 0).sum())
        s = losses.sum(0)
        self.position_sum = s if self.position_sum is None else self.position_sum + s
        self.position_count += losses.shape[0]
        if doc_ids is not None:
            for d, row in zip(doc_ids, losses.mean(1).tolist()):
                self.doc_losses.setdefault(d, []).append(row)
            if answer_mask is not None:
                sums, counts = (losses * m).sum(1).tolist(), m.sum(1).tolist()
                for d, a, n in zip(doc_ids, sums, counts):
                    self._add_answers(d, a, n)

    def add_info(self, info: dict, doc_id: object | None = None) -> None:
        """One segment as an env's ``info`` reports it (``ce``, ``top{k}``, ``answer_ce``,
        ``recall_acc``, ``answer_tokens``, ``token_losses``): the same sums as :meth:`add`."""
        losses = torch.as_tensor(info["token_losses"], dtype=torch.float32)
        L = losses.numel()
        self.loss_sum += float(losses.sum())
        self.tokens += L
        for k in self.ks:
            self.hits[k] = self.hits.get(k, 0) + int(round(info[f"top{k}"] * L))
        n_ans = int(info.get("answer_tokens", 0))
        if n_ans:
            self.answer_loss_sum += info["answer_ce"] * n_ans
            self.answer_tokens += n_ans
            self.answer_hits += int(round(info["recall_acc"] * n_ans))
        self.position_sum = losses.clone() if self.position_sum is None else self.position_sum + losses
        self.position_count += 1
        if doc_id is not None:
            self.doc_losses.setdefault(doc_id, []).append(float(losses.mean()))
            if n_ans:
                self._add_answers(doc_id, info["answer_ce"] * n_ans, n_ans)
        if n_ans and "answer_distance" in info:
            self.add_by_distance(info["answer_distance"], info["answer_hit"], info.get("answer_held"))

    def add_by_distance(self, distances: Sequence[int], hits: Sequence[bool], held: Sequence[bool] | None = None) -> None:
        """Answer tokens with their facts' distances, exact-recall hits and (select mode) whether
        the memory held the fact when it was asked."""
        for i, (d, hit) in enumerate(zip(np.asarray(distances).tolist(), np.asarray(hits).tolist())):
            acc = self.by_distance.setdefault(int(d), [0, 0, 0, 0])
            acc[0] += int(bool(hit))
            acc[1] += 1
            if held is not None:
                acc[2] += int(bool(held[i]))
                acc[3] += 1

    def _add_answers(self, doc: object, loss_sum: float, tokens: float) -> None:
        acc = self.doc_answers.setdefault(doc, [0.0, 0.0])
        acc[0] += float(loss_sum)
        acc[1] += float(tokens)

    def summary(self) -> dict[str, float]:
        ce = self.loss_sum / max(1, self.tokens)
        out = {"ce": ce, "ppl": perplexity(ce)}
        out.update({f"top{k}": self.hits.get(k, 0) / max(1, self.tokens) for k in self.ks})
        if self.answer_tokens:
            out["answer_ce"] = self.answer_loss_sum / self.answer_tokens
            out["recall_acc"] = self.answer_hits / self.answer_tokens
        if len(self.doc_losses) > 1:
            lo, hi = bootstrap_ci([float(np.mean(v)) for v in self.doc_losses.values()])
            out["ce_lo"], out["ce_hi"] = lo, hi
        if self.by_distance:
            known = sum(v[3] for v in self.by_distance.values())
            if known:
                out["held"] = sum(v[2] for v in self.by_distance.values()) / known
            for d in sorted(self.by_distance):
                out[f"recall_d{d}"] = self.by_distance[d][0] / self.by_distance[d][1]
        return out

    def position_curve(self) -> list[float]:
        """Mean loss at each position of a segment."""
        if self.position_sum is None:
            return []
        return (self.position_sum / self.position_count).tolist()
