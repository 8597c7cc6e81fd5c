"""Behaviour cloning of the hypothesis-2 memory, the continuous writer's start before RL.

The ``memory`` reader was trained on one memory only: the previous segment's token embeddings
pooled into the slots through pinv(A) (:func:`ltm_gym.lm.memory.previous_segment_memory`). A writer
whose mean is regressed onto that memory starts RL where its reader reads something (the
``prev_segment_memory`` row of the study's table) instead of at "write nothing", which this reader
scores a little below no memory at all.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ltm_gym.core.progress import progress_bar
from ltm_gym.lm.memory import previous_segment_memory
from ltm_gym.core.errors import UserError


def imitation_documents(backend: Any, split: str) -> list:
    """The documents of ``split`` that have a next segment (the ones a writer writes memory for)."""
    if split not in backend.documents:
        raise UserError(f"split={split!r}; the backend holds {sorted(backend.documents)}")
    docs = [d for d in backend.documents[split] if d.n_segments > 1]
    if not docs:
        raise UserError(f"split {split!r} has no document of two segments or more to imitate on")
    return docs


def hypothesis2_batch(backend: Any, docs: list, batch: int, scale: float,
                      generator: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``batch`` random (segment, previous memory) observations of ``docs`` and the action that
    writes the segment's hypothesis-2 memory: obs {"tokens" (B, L), "memory" (B, m, d)}, target (B, m, d).
    The previous memory is the previous segment's hypothesis-2 memory (zeros at a document's start),
    as a writer that imitated perfectly would have left it."""
    picks = torch.randint(len(docs), (batch,), generator=generator).tolist()
    segs = [int(torch.randint(docs[i].n_segments - 1, (1,), generator=generator)) for i in picks]
    ids = torch.stack([docs[i].ids[t] for i, t in zip(picks, segs)])
    prev_ids = torch.stack([docs[i].ids[max(t - 1, 0)] for i, t in zip(picks, segs)])
    both = previous_segment_memory(backend.model, torch.cat([ids, prev_ids]).to(backend.device))
    target, prev = both[:batch] / scale, both[batch:]
    prev[torch.tensor(segs, device=prev.device) == 0] = 0.0
    return {"tokens": ids.to(backend.device), "memory": prev}, target.clamp(-0.999, 0.999)


def imitate_hypothesis2(writer: nn.Module, backend: Any, steps: int, scale: float = 1.0, batch: int = 32,
                        lr: float = 1e-3, seed: int = 0, split: str = "train",
                        progress: bool = False) -> tuple[float, float]:
    """Regress ``writer``'s squashed mean tanh(mean) onto the hypothesis-2 action for ``steps``
    Adam steps; returns the relative squared error (MSE / target variance) of the first and last batch."""
    if steps < 1:
        raise UserError(f"steps={steps}: behaviour cloning needs at least one step")
    g = torch.Generator().manual_seed(seed)
    params = [p for p in writer.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    device = next(writer.parameters()).device
    docs = imitation_documents(backend, split)
    errors = []
    for _ in progress_bar(range(steps), desc="behaviour cloning", disable=not progress, dynamic_ncols=True):
        obs, target = hypothesis2_batch(backend, docs, batch, scale, g)
        obs = {k: v.to(device) for k, v in obs.items()}
        target = target.to(device)
        mean = writer(obs)[0]
        loss = ((torch.tanh(mean) - target) ** 2).mean() / target.var().clamp_min(1e-12)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        errors.append(float(loss.detach()))
    return errors[0], errors[-1]
