"""A causal LM's forward cut at one transformer block: the trunk below it, the head from it on.

When the memory is read only in the last few blocks, every block below the first of them computes
the same hidden states whatever the memory holds. K candidate memories of the same segment then
need that trunk once, not K times; only the head (the memory blocks, the final norm and the output
layer) runs per candidate. :func:`run_trunk` runs the LM up to a block and keeps what the LM passes
that block (its hidden states and the other arguments: attention mask, rotary embeddings, ...);
:func:`run_blocks` runs blocks from there on any number of copies of those hidden states.

Supported families are the ones whose head is exactly "blocks, final norm, output layer" and
that are tested against the plain forward (:data:`FAMILIES`); :func:`final_norm` says why another
one is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn
from ltm_gym.core.errors import UserError

FAMILIES = ("gpt2", "llama")
"""``config.model_type`` of the LMs whose forward may be cut (tested against the plain forward)."""
_NORMS = ("ln_f", "norm")


@dataclass
class Trunk:
    """What the LM passes the first cut block for a batch of ``batch`` sequences."""

    hidden: torch.Tensor
    """(batch, T, H): the hidden states entering the block."""
    args: tuple
    """The block's other positional arguments, as the LM passed them."""
    kwargs: dict[str, Any]
    """The block's keyword arguments, as the LM passed them."""

    @property
    def batch(self) -> int:
        return self.hidden.shape[0]

    def repeated(self, times: int) -> "Trunk":
        """The same states ``times`` times over, copy-major (row ``k * batch + i`` is row i), and
        every per-sequence argument (a tensor of >= 2 dims whose first is ``batch``) with them."""
        n = self.batch

        def rep(x: Any) -> Any:
            if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.shape[0] == n and n > 1:
                return x.repeat(times, *([1] * (x.dim() - 1)))
            if isinstance(x, tuple):
                return tuple(rep(v) for v in x)
            return x

        return Trunk(self.hidden.repeat(times, 1, 1), rep(self.args), {k: rep(v) for k, v in self.kwargs.items()})


class _Stop(Exception):
    """Raised by the capturing hook to end the forward at the cut block."""


def base_lm(lm: nn.Module) -> nn.Module:
    """The HF causal LM inside a PEFT wrapper (or ``lm`` itself)."""
    get = getattr(lm, "get_base_model", None)
    return get() if callable(get) else lm


def model_type(lm: nn.Module) -> str:
    return str(getattr(base_lm(lm).config, "model_type", "")) or type(base_lm(lm)).__name__


def final_norm(lm: nn.Module) -> nn.Module:
    """The norm between the last block and the output layer (GPT-2 ``ln_f``, Llama ``norm``)."""
    kind = model_type(lm)
    if kind not in FAMILIES:
        raise UserError(f"the forward of a {kind!r} LM is not cut at a block (supported: {', '.join(FAMILIES)})")
    inner = base_lm(lm).base_model
    for name in _NORMS:
        norm = getattr(inner, name, None)
        if isinstance(norm, nn.Module):
            return norm
    raise UserError(f"cannot find the final norm of {type(inner).__name__} (looked for {', '.join(_NORMS)})")


def run_trunk(lm: nn.Module, block: nn.Module, ids: torch.Tensor) -> Trunk:
    """Run ``lm`` on ``ids`` (B, T) up to ``block`` (one of its blocks) and return what reaches it."""
    seen: dict[str, Any] = {}

    def capture(module: nn.Module, args: tuple, kwargs: dict[str, Any]):
        seen["args"], seen["kwargs"] = args, dict(kwargs)
        raise _Stop

    handle = block.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        lm(input_ids=ids, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "args" not in seen:
        raise RuntimeError(f"the forward of {type(lm).__name__} never reached the cut block")
    args, kwargs = seen["args"], seen["kwargs"]
    if args:
        return Trunk(args[0], tuple(args[1:]), kwargs)
    hidden = kwargs.pop("hidden_states")
    return Trunk(hidden, (), kwargs)


def run_blocks(blocks: Sequence[nn.Module], trunk: Trunk) -> torch.Tensor:
    """The hidden states after ``blocks`` (run in order from ``trunk``, forward hooks included)."""
    h = trunk.hidden
    for block in blocks:
        out = block(h, *trunk.args, **trunk.kwargs)
        h = out[0] if isinstance(out, tuple) else out
    return h


class TrunkCache:
    """The trunk's hidden states of segments, by their token ids, while the trunk does not change.

    When no parameter below the cut trains (the memory blocks carry the only adapters) and no
    dropout runs there, a segment's trunk states are a function of its tokens alone: an env that
    visits a segment again, a reader trained for many epochs on a fixed corpus, or the K candidates
    of a state read them from here instead of running the blocks again. Entries are dropped, oldest
    first, beyond ``max_bytes``; all of them whenever a trunk parameter is replaced or changed in
    place (its storage or its version counter), or the dtype, device or autocast changes."""

    def __init__(self, max_bytes: int = 1 << 31) -> None:
        self.max_bytes = max_bytes
        self.rows: dict[bytes, torch.Tensor] = {}
        self.templates: dict[int, tuple[tuple, dict[str, Any]]] = {}
        self.state: tuple | None = None
        self.bytes = 0
        self.hits = self.misses = 0

    def clear(self) -> None:
        self.rows.clear()
        self.templates.clear()
        self.bytes = 0

    def trunk(self, lm: nn.Module, block: nn.Module, ids: torch.Tensor, state: tuple) -> Trunk:
        """What ``block`` receives for ``ids`` (B, T), from the cache where it can be."""
        if state != self.state:
            self.clear()
            self.state = state
        keys = [row.tobytes() for row in ids.cpu().numpy()]
        missing = list(dict.fromkeys(k for k in keys if k not in self.rows))
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        T = ids.shape[1]
        found = {k: self.rows[k] for k in keys if k in self.rows}
        if missing:
            index = {k: i for i, k in enumerate(keys)}
            fresh = run_trunk(lm, block, ids[[index[k] for k in missing]])
            for k, h in zip(missing, fresh.hidden.detach()):
                found[k] = h
                self._store(k, h.clone())
            if missing == keys:
                return fresh
        if T not in self.templates:         # the other arguments for any batch: a batch of one broadcasts
            one = run_trunk(lm, block, ids[:1])
            self.templates[T] = (one.args, one.kwargs)
        hidden = torch.stack([found[k] for k in keys])
        args, kwargs = self.templates[T]
        return Trunk(hidden, args, kwargs)

    def _store(self, key: bytes, hidden: torch.Tensor) -> None:
        size = hidden.numel() * hidden.element_size()
        while self.rows and self.bytes + size > self.max_bytes:
            old = self.rows.pop(next(iter(self.rows)))
            self.bytes -= old.numel() * old.element_size()
        if size <= self.max_bytes:
            self.rows[key] = hidden
            self.bytes += size
