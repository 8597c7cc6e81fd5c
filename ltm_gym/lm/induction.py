"""An optional pre-training hint that forms a small LM's copying (induction) circuit early.

Recalling a fact from the context ("recall : KEY" -> the VALUE that followed KEY earlier) is what
an induction circuit does: a head of an early block attends to the previous token, so each
position knows its predecessor, and a head of a later block attends from the current token to the
position right after its earlier occurrence and copies what stands there. A tiny LM trained only
on next-token loss sits for thousands of steps on a plateau where it has learned the document's
word counts but not this circuit. The hint is an auxiliary loss on the attention probabilities of
ONE head in each of two blocks that points them at those targets; every other head, and the
model's architecture, stay as they are. It is used to pre-train the embedded tiny LM in minutes
on a CPU (``pretrain.induction_hint``); a real pre-trained LM needs none.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .model import find_blocks
from ltm_gym.core.errors import UserError


def _attention(block: nn.Module) -> nn.Module:
    for name in ("attn", "self_attn", "attention"):
        if hasattr(block, name):
            return getattr(block, name)
    raise UserError(f"block {type(block).__name__} has no attention module (attn / self_attn / attention)")


@contextlib.contextmanager
def captured_attention(lm: nn.Module, layers: tuple[int, ...]) -> Iterator[list[torch.Tensor]]:
    """Attention probabilities (B, H, T, T) of blocks ``layers`` during the forwards inside.
    Switches the LM to the eager implementation (the fused one does not expose them)."""
    blocks = list(find_blocks(lm))
    if max(layers) >= len(blocks):
        raise UserError(f"induction hint needs blocks {layers}; the LM has {len(blocks)}")
    previous = getattr(lm.config, "_attn_implementation", None)
    lm.set_attn_implementation("eager")
    captured: list[torch.Tensor] = []
    handles = [_attention(blocks[i]).register_forward_hook(lambda mod, args, out: captured.append(out[1]))
               for i in layers]
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()
        if previous is not None:
            lm.set_attn_implementation(previous)


def induction_targets(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean targets (B, T, T) for the sequences ``ids`` (B, T) as the LM reads them:
    previous token (i -> i - 1) and induction (i -> j + 1 for every j < i with ids[j] == ids[i])."""
    B, T = ids.shape
    idx = torch.arange(T, device=ids.device)
    prev = (idx[:, None] - 1 == idx[None, :]).expand(B, T, T)
    earlier = torch.ones(T, T, dtype=torch.bool, device=ids.device).tril(-1)
    same = (ids[:, :, None] == ids[:, None, :]) & earlier
    ind = torch.zeros_like(same)
    ind[:, :, 1:] = same[:, :, :-1]
    return prev, ind


def attention_hint_loss(probs: torch.Tensor, targets: torch.Tensor, head: int = 0) -> torch.Tensor:
    """-log of the attention mass that head ``head`` of a block (probabilities (B, H, T + 1, T + 1)
    over [BOS, ids]) puts, from the position that reads ``ids[i]``, on the one that reads
    ``ids[targets[i]]`` (``targets`` (B, T); -1: no target), averaged over the positions that have
    one; 0 when none has. The question-answering twins of the induction hint (bAbI facts in book
    text): each fact's location attends to its actor, the question's last token to the actor it
    names, and, a block later, that token to the supporting fact's location."""
    rows, queries = (targets >= 0).nonzero(as_tuple=True)
    if len(rows) == 0:
        return probs.new_zeros((), dtype=torch.float32)
    mass = probs[rows, head, queries + 1, targets[rows, queries] + 1].float()
    return -mass.clamp_min(1e-9).log().mean()


def answer_targets(source: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`attention_hint_loss` targets from ``answer_source`` (B, T): the position that predicts
    an answer (it reads the token before it) attends to the word that states the answer. With
    ``subject_source`` (B, T), only where that position also reads the actor its question names (qa1:
    one head can match the asked actor with a fact's; a qa2 / qa3 answer needs a chain of facts)."""
    targets = torch.full_like(source, -1)
    targets[:, :-1] = source[:, 1:]
    if subject is not None:
        targets[subject < 0] = -1
    return targets


def induction_hint_loss(attentions: list[torch.Tensor], ids: torch.Tensor, head: int = 0) -> torch.Tensor:
    """-log of the attention mass that head ``head`` of the two captured blocks puts on its
    targets, averaged over the positions that have one."""
    total = ids.new_zeros((), dtype=torch.float32)
    for probs, target in zip(attentions, induction_targets(ids)):
        mass = (probs[:, head].float() * target).sum(-1)
        has = target.any(-1)
        if has.any():
            total = total - mass[has].clamp_min(1e-9).log().mean()
    return total
