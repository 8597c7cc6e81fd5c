"""LLM-LTM: any GPT-2-like HF causal LM that reads a memory of ``n_slots`` x ``slot_dim`` vectors.

Every segment is fed as [BOS, s_1, ..., s_L], so each of its L tokens is predicted (the first one
from BOS, memory and any context alone). :meth:`LLMLTM.forward` returns the logits and the
per-token losses of one pass; the loss of every prefix is a cumulative mean of those
(:func:`ltm_gym.metrics.prefix_losses`), so k prefixes cost one forward, not k.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ltm_gym.core import check

from .memory import MemoryCrossAttention, fixed_projection, selection_codes, slot_windows, token_windows
from .trunk import FAMILIES, Trunk, TrunkCache, base_lm, final_norm, model_type, run_blocks, run_trunk
from ltm_gym.core.errors import UserError

LOGIT_BYTES = 1 << 26
"""The output layer's logits of at most this many bytes (fp32) exist at once in :meth:`LLMLTM.candidate_losses`."""


@dataclass
class LoraSettings:
    enabled: bool = True
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["c_attn"])
    layers: Literal["all", "memory"] = "all"
    """``all`` blocks, or only the ``memory`` blocks (those that read the memory): then every block
    below them stays the frozen base LM, whose states are computed once per segment and cached
    (:class:`~ltm_gym.lm.trunk.TrunkCache`)."""

    def validate(self) -> None:
        check(self.r >= 1, "lora.r", self.r, ">= 1")
        check(0 <= self.dropout < 1, "lora.dropout", self.dropout, "in [0, 1)")
        check(bool(self.target_modules), "lora.target_modules", self.target_modules, "a non-empty list")
        check(self.layers in ("all", "memory"), "lora.layers", self.layers, "all, memory")


@dataclass
class MemorySettings:
    n_slots: int = 10
    slot_dim: int = 64
    read_path: Literal["cross_attention", "prefix", "tokens"] = "cross_attention"
    """How the LM reads memory: cross-attention after its last blocks, soft prefix tokens, or
    ``tokens``: selection slots that spell their windows, read as text before the segment
    (:func:`~ltm_gym.lm.memory.slot_windows`; for ``action_mode=select``)."""
    n_memory_layers: int = 2
    """Cross-attention is added after the last this-many blocks."""
    n_head: int = 0
    """Heads of the memory cross-attention; 0 = the LM's."""
    projection_seed: int = 0
    """Seed of the fixed matrix A (hypotheses 1 and 2); the memory projection starts at A."""
    read_scale: float = 1.0
    """The fixed scale of the cross-attention read's output (:class:`~ltm_gym.lm.memory.MemoryCrossAttention`):
    about the RMS of the LM's hidden states at the memory blocks, for the read to matter as soon on a
    real LM as on the tiny one."""
    code_context: int = 1
    """Tokens before a position that its selection code carries (:func:`~ltm_gym.lm.selection_codes`)."""
    query_code: bool = False
    """Whether the cross-attention's query also reads each position's own selection code (the code
    a selection memory would hold for it): a reader can then match the key before a question to
    the slot that holds it without going through the LM's states (needed on a real LM, whose
    frozen trunk hides the key in the state of the space before a number)."""

    spelled: bool = False
    """Whether a selection slot spells the window it holds (its token ids, exactly:
    :func:`~ltm_gym.lm.memory.window_code`) beside a shorter projected code, and the cross-attention
    reader reads the LM's embeddings of those tokens, concatenated, where a projected code keeps
    about 1 / (code_context + 1) of each token; the query code is read the same way. Always so with
    ``read_path: tokens``."""

    slot_order: bool = False
    """Whether the reader knows each slot's place in memory (a learned vector per slot index added
    to the projected memory): a selection writes the new positions first and the kept slots after
    them in their old order, so a slot's index says how recent it is, and of two facts about one
    actor the reader can take the later (bAbI: facts overwrite earlier ones)."""

    @property
    def spells(self) -> bool:
        """Whether slots spell their windows (``spelled``, or the ``tokens`` read path)."""
        return self.spelled or self.read_path == "tokens"

    @property
    def window_width(self) -> int:
        """Tokens a selection slot's window holds: the selected one and ``code_context`` before it."""
        return self.code_context + 1

    def validate(self) -> None:
        check(self.n_slots >= 1, "memory.n_slots", self.n_slots, ">= 1")
        check(not self.slot_order or self.read_path == "cross_attention", "memory.slot_order", self.slot_order,
              f"false with read_path {self.read_path} (a reader's slot vectors are cross-attention's)")
        check(self.slot_dim >= 1, "memory.slot_dim", self.slot_dim, ">= 1")
        check(self.read_path in ("cross_attention", "prefix", "tokens"), "memory.read_path", self.read_path,
              "cross_attention, prefix, tokens")
        check(not self.spells or self.slot_dim > self.code_context + 2, "memory.slot_dim", self.slot_dim,
              f"> code_context + 2 = {self.code_context + 2} when a slot spells its window")
        check(not self.spelled or self.read_path != "prefix", "memory.spelled", self.spelled,
              "false with read_path prefix")
        check(self.n_memory_layers >= 1, "memory.n_memory_layers", self.n_memory_layers, ">= 1")
        check(self.code_context >= 1, "memory.code_context", self.code_context, ">= 1")
        check(self.read_scale > 0, "memory.read_scale", self.read_scale, "> 0")
        check(not self.query_code or self.read_path == "cross_attention", "memory.query_code", self.query_code,
              f"false with read_path {self.read_path} (only cross-attention has a query)")


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each target token (``targets``' shape) under ``logits`` (..., V), computed
    in at least fp32 (bf16 logits are widened; fp64 stays fp64)."""
    wide = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(wide.reshape(-1, wide.shape[-1]), targets.reshape(-1), reduction="none").view(targets.shape)


def read_into_output(reader: MemoryCrossAttention, slots: torch.Tensor, codes: torch.Tensor | None,
                     block: nn.Module, args: tuple, output):
    """A forward hook's body: ``block``'s output with ``slots`` read into its hidden states."""
    if isinstance(output, tuple):
        return (reader(output[0], slots, codes),) + tuple(output[1:])
    return reader(output, slots, codes)


def find_blocks(lm: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a HF causal LM (GPT-2 ``transformer.h``, Llama ``model.layers``, ...)."""
    n = getattr(lm.config, "num_hidden_layers", None) or getattr(lm.config, "n_layer", None)
    for module in lm.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise UserError(f"cannot find the {n} transformer blocks of {type(lm).__name__}")


class LLMLTM(nn.Module):
    """A causal LM plus a memory read path (and LoRA adapters when enabled).

    ``memory=None`` runs the LM without memory (the LoRA baseline); a tensor (B, n_slots, slot_dim)
    is read through cross-attention, as a soft prefix, or (spelled selection slots, ``read_path:
    tokens``) as the text of the windows its slots hold.
    """

    def __init__(self, lm: nn.Module, memory: MemorySettings | None = None, lora: LoraSettings | None = None,
                 bos_token_id: int | None = None) -> None:
        super().__init__()
        self.mem_cfg = memory or MemorySettings()
        self.lora_cfg = lora or LoraSettings(enabled=False)
        cfg = lm.config
        self.hidden = cfg.hidden_size
        self.bos_token_id = bos_token_id if bos_token_id is not None else cfg.bos_token_id
        if self.bos_token_id is None:
            raise UserError("the LM has no bos_token_id; pass bos_token_id=")
        if self.lora_cfg.enabled:
            import warnings

            from peft import LoraConfig, get_peft_model

            n_blocks = len(find_blocks(lm))
            layers = None
            if self.lora_cfg.layers == "memory":
                if self.mem_cfg.read_path != "cross_attention":
                    raise UserError("lora.layers='memory' needs read_path='cross_attention' (a prefix is read by every block)")
                layers = list(range(n_blocks - min(self.mem_cfg.n_memory_layers, n_blocks), n_blocks))
            with warnings.catch_warnings():  # peft asks transformers a deprecated question; not ours to fix
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                lm = get_peft_model(lm, LoraConfig(
                    r=self.lora_cfg.r, lora_alpha=self.lora_cfg.alpha, lora_dropout=self.lora_cfg.dropout,
                    target_modules=list(self.lora_cfg.target_modules), layers_to_transform=layers,
                    fan_in_fan_out=type(lm).__name__.startswith("GPT2")))
        self.lm = lm
        m = self.mem_cfg
        self.spelled_reads = m.spells and m.read_path == "cross_attention"
        read_dim = m.window_width * self.hidden if self.spelled_reads else m.slot_dim
        self.memory_proj = nn.Linear(read_dim, self.hidden, bias=False)
        if not self.spelled_reads:
            with torch.no_grad():
                self.memory_proj.weight.copy_(fixed_projection(m.slot_dim, self.hidden, m.projection_seed))
        self.slot_embed = nn.Parameter(torch.zeros(m.n_slots, self.hidden)) if m.slot_order else None
        self.readers = nn.ModuleList()
        self.trunk_cache: TrunkCache | None = TrunkCache()
        """Trunk states per segment while the trunk is frozen (:meth:`cached_trunk`); None: never cached."""
        self._trunk_generation = 0
        for module in self.lm.modules():        # loading weights anywhere in the LM may change the trunk
            module.register_load_state_dict_post_hook(self._weights_loaded)
        if m.read_path == "cross_attention":
            heads = m.n_head or getattr(cfg, "num_attention_heads", None) or cfg.n_head
            for _ in range(min(m.n_memory_layers, len(find_blocks(self.lm)))):
                self.readers.append(MemoryCrossAttention(self.hidden, heads, m.read_scale,
                                                         (read_dim if m.query_code else 0)))

    def memory_blocks(self) -> list[nn.Module]:
        """The LM blocks whose outputs the :attr:`readers` read memory into (the last ones)."""
        blocks = list(find_blocks(self.lm))
        return blocks[len(blocks) - len(self.readers):]

    @contextmanager
    def _reading(self, memory: torch.Tensor | None, ids: torch.Tensor, copies: int = 1):
        """Read ``memory`` (B', m, d) into the memory blocks' outputs for the forwards run inside:
        each block gets a hook bound to this memory (and, with query codes, to the codes of ``ids``
        (B, T) repeated ``copies`` times, B' = copies B) for the duration of the call alone, so
        that no state outlives it."""
        if memory is None or not self.readers:
            yield
            return
        slots = self.memory_proj(self.slot_inputs(memory))
        if self.slot_embed is not None:
            slots = slots + self.slot_embed[: memory.shape[1]].to(slots.dtype)
        codes = None
        if self.mem_cfg.query_code:
            codes = (self.window_embeddings(ids) if self.spelled_reads else selection_codes(self, ids))
            codes = codes.repeat(copies, 1, 1)
        handles = [block.register_forward_hook(partial(read_into_output, reader, slots, codes))
                   for block, reader in zip(self.memory_blocks(), self.readers)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    @contextmanager
    def captured_reads(self) -> Iterator[list[torch.Tensor]]:
        """The log of the readers' attention over the slots, (B, nh, T, m) for [BOS, segment]
        (T = L + 1), one per reader and forward, in order, for the forwards run inside (an
        auxiliary loss on where a reader looks: ``select.read_hint``)."""
        captured: list[torch.Tensor] = []
        handles = [r.register_forward_hook(lambda mod, args, out: captured.append(mod.log_attention(*args)))
                   for r in self.readers]
        try:
            yield captured
        finally:
            for handle in handles:
                handle.remove()

    @property
    def vocab_size(self) -> int:
        return self.lm.get_input_embeddings().weight.shape[0]

    def token_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    def forward(self, input_ids: torch.Tensor, memory: torch.Tensor | None = None,
                context_ids: torch.Tensor | None = None, return_hidden: bool = False):
        """Logits (B, L, V) predicting each of the L tokens of ``input_ids`` and their losses (B, L);
        with ``return_hidden`` also the final hidden states at those L tokens (B, L, H), the input
        of the output layer.

        ``context_ids`` (B, C), when given, stand between BOS and the segment (the full-context
        oracle sees the previous segments this way).
        """
        B, L = input_ids.shape
        bos = input_ids.new_full((B, 1), self.bos_token_id)
        parts = [bos] + ([context_ids] if context_ids is not None else []) + [input_ids]
        ids = torch.cat(parts, dim=1)
        start = ids.shape[1] - L - 1          # position whose output predicts input_ids[:, 0]
        if memory is not None:
            self._check_memory(memory, B)
        if context_ids is None and self.trunk_cacheable():
            return self._forward_cached(input_ids, memory, return_hidden)
        if memory is not None and self.mem_cfg.read_path == "tokens":
            text, held = self.memory_text(memory)
            ids = torch.cat([bos, text] + parts[1:], dim=1)
            attention = torch.cat([torch.ones_like(bos, dtype=torch.bool), held,
                                   torch.ones_like(ids[:, 1 + text.shape[1]:], dtype=torch.bool)], dim=1)
            start = ids.shape[1] - L - 1
            positions = (attention.long().cumsum(1) - 1).clamp_min(0)
            out = self.lm(input_ids=ids, attention_mask=attention.long(), position_ids=positions,
                          output_hidden_states=return_hidden)
        elif memory is not None and self.mem_cfg.read_path == "prefix":
            prefix = self.memory_proj(memory.to(self.memory_proj.weight.dtype))
            embeds = torch.cat([prefix, self.token_embeddings(ids)], dim=1)
            out = self.lm(inputs_embeds=embeds, output_hidden_states=return_hidden)
            start += prefix.shape[1]
        else:
            with self._reading(memory, ids):
                out = self.lm(input_ids=ids, output_hidden_states=return_hidden)
        logits = out.logits[:, start:-1]
        losses = token_losses(logits, input_ids)
        if return_hidden:
            return logits, losses, out.hidden_states[-1][:, -L:]
        return logits, losses

    def slot_inputs(self, memory: torch.Tensor) -> torch.Tensor:
        """What :attr:`memory_proj` reads of each slot of ``memory`` (B, m, d): the slot itself, or
        with spelled reads the embeddings of the tokens it spells, concatenated (zero in an empty slot)."""
        dtype = self.memory_proj.weight.dtype
        if not self.spelled_reads:
            return memory.to(dtype)
        ids, held = slot_windows(memory, self.mem_cfg.code_context, self.vocab_size)
        emb = self.spelled_embeddings(ids.to(self.memory_proj.weight.device))         # (B, m, w H)
        return emb * held[..., None].to(emb.device, dtype)

    def spelled_embeddings(self, windows: torch.Tensor) -> torch.Tensor:
        """(..., w H): the LM's input embeddings of token windows (..., w), each scaled to unit RMS
        (a small LM's embeddings have entries ~0.03: read as they are, a new reader's query and key
        would hardly move), concatenated, without gradient into the embeddings."""
        emb = self.token_embeddings(windows).detach().float()
        emb = emb / emb.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-6)
        return emb.flatten(-2).to(self.memory_proj.weight.dtype)

    def window_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T, w H): at each position of ``ids`` (B, T), the LM's embeddings of the window a slot
        selected there would spell (the token and the ``code_context`` before it, BOS before the
        start): the query code of spelled reads."""
        return self.spelled_embeddings(token_windows(ids, self.mem_cfg.code_context, self.bos_token_id))

    def memory_text(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What a spelled memory (B, m, d) puts before the segment (``read_path: tokens``): the held
        slots' windows, oldest slot first (a selection writes the newest first), BOS dropped, as ids
        (B, C) packed to the right and whether each is text (B, C) (False: padding, never attended)."""
        ids, held = slot_windows(memory, self.mem_cfg.code_context, self.vocab_size)
        ids, held = ids.flip(1).flatten(1), (held.flip(1)[:, :, None] & (ids.flip(1) != self.bos_token_id)).flatten(1)
        order = held.int().sort(dim=1, stable=True).indices                     # padding first, text in order
        ids, held = ids.gather(1, order), held.gather(1, order)
        width = int(held.sum(1).max()) if held.numel() else 0
        ids = torch.where(held, ids, torch.full_like(ids, self.bos_token_id))
        return ids[:, ids.shape[1] - width:], held[:, held.shape[1] - width:]

    def _forward_cached(self, input_ids: torch.Tensor, memory: torch.Tensor | None, return_hidden: bool):
        """:meth:`forward` from the cached trunk: the memory blocks, the final norm, the output layer."""
        B, L = input_ids.shape
        ids = torch.cat([input_ids.new_full((B, 1), self.bos_token_id), input_ids], dim=1)
        trunk = self.cached_trunk(ids)
        with self._reading(memory, ids):
            hidden = final_norm(self.lm)(run_blocks(self.memory_blocks(), trunk))
        logits = base_lm(self.lm).get_output_embeddings()(hidden[:, :L])
        losses = token_losses(logits, input_ids)
        if return_hidden:
            return logits, losses, hidden[:, -L:]
        return logits, losses

    def _trunk_parameters(self) -> list[nn.Parameter]:
        above = {id(p) for b in self.memory_blocks() for p in b.parameters()}
        above |= {id(p) for p in final_norm(self.lm).parameters()}
        return [p for p in self.lm.parameters() if id(p) not in above]

    def trunk_cacheable(self) -> bool:
        """Whether a segment's trunk states depend on its tokens alone, so that :attr:`trunk_cache`
        may serve them: a shared trunk with at least one block below the memory read, none of whose
        parameters trains, and no dropout running there."""
        return self._cacheable_trunk() is not None

    def _cacheable_trunk(self) -> list[nn.Parameter] | None:
        """The trunk's parameters when :meth:`trunk_cacheable` (what keys the cache), else None."""
        if self.trunk_cache is None or not self.shares_trunk or not self.readers:
            return None
        if len(find_blocks(self.lm)) <= len(self.readers):
            return None
        params = self._trunk_parameters()
        if any(p.requires_grad for p in params):
            return None
        if self.lm.training and any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.lm.modules()):
            return None
        return params

    def cached_trunk(self, ids: torch.Tensor) -> Trunk:
        """What the first memory block receives for ``ids`` (B, T) ([BOS, segment]): from
        :attr:`trunk_cache` when :meth:`trunk_cacheable`, else computed."""
        cut = self.memory_blocks()[0]
        params = self._cacheable_trunk()
        if params is None:
            return run_trunk(self.lm, cut, ids)
        device = ids.device.type
        state = (str(ids.device), str(params[0].dtype), torch.is_autocast_enabled(device),
                 str(torch.get_autocast_dtype(device)), self._trunk_generation,
                 tuple(p.data_ptr() for p in params))
        return self.trunk_cache.trunk(self.lm, cut, ids, state)

    def _weights_loaded(self, module: nn.Module, incompatible) -> None:
        self.trunk_changed()           # a bound method: a deep copy of the model rebinds it to the copy

    def trunk_changed(self) -> None:
        """Say that the trunk's weights changed in place, so that :attr:`trunk_cache` is not read
        again: called by every load of weights into the LM; code that edits frozen trunk weights by
        hand calls it too."""
        self._trunk_generation += 1

    @property
    def shares_trunk(self) -> bool:
        """Whether K memories of one segment can share the blocks below the memory read
        (cross-attention read path on a family whose forward is cut, :mod:`ltm_gym.lm.trunk`)."""
        return self.mem_cfg.read_path == "cross_attention" and model_type(self.lm) in FAMILIES

    def candidate_losses(self, input_ids: torch.Tensor, memories: torch.Tensor,
                         positions: torch.Tensor | None = None) -> torch.Tensor:
        """Token losses (K, B, L) of segments ``input_ids`` (B, L) under each of K memories
        ``memories`` (K, B, m, d): what :meth:`forward` gives for each candidate (up to float
        rounding), cheaper. The blocks below the memory read run once for the B segments; the
        memory blocks and the final norm run per candidate; the output layer runs only at
        ``positions`` (B, L) bool (every position when None), in chunks, without a (K B, L, V)
        logits tensor. Losses are 0 where not computed. Needs :attr:`shares_trunk`."""
        if not self.shares_trunk:
            raise UserError(f"candidate memories share no trunk with read_path={self.mem_cfg.read_path!r} on a "
                            f"{model_type(self.lm)!r} LM; use forward() per candidate")
        K, B, L = memories.shape[0], *input_ids.shape
        flat = memories.reshape(K * B, *memories.shape[2:])
        self._check_memory(flat, K * B)
        ids = torch.cat([input_ids.new_full((B, 1), self.bos_token_id), input_ids], dim=1)
        trunk = self.cached_trunk(ids).repeated(K)
        with self._reading(flat, ids, K):
            hidden = run_blocks(self.memory_blocks(), trunk)
        hidden = final_norm(self.lm)(hidden)[:, :L]                       # position p predicts input_ids[:, p]
        want = (torch.ones_like(input_ids, dtype=torch.bool) if positions is None
                else positions.to(input_ids.device, torch.bool)).repeat(K, 1)
        picked, targets = hidden[want], input_ids.repeat(K, 1)[want]
        head = base_lm(self.lm).get_output_embeddings()
        rows = max(1, LOGIT_BYTES // (4 * self.vocab_size))
        ce = []
        for i in range(0, len(picked), rows):
            ce.append(token_losses(head(picked[i:i + rows]), targets[i:i + rows]))
        losses = torch.zeros(K * B, L, device=hidden.device, dtype=ce[0].dtype if ce else torch.float32)
        if ce:
            losses[want] = torch.cat(ce)
        return losses.view(K, B, L)

    def hidden_bound(self) -> float:
        """A finite bound of the final hidden states: the last LayerNorm maps every vector to norm
        sqrt(H), so |x| <= sqrt(H) max|gamma| + max|beta| (doubled as a margin for co-training)."""
        norms = [m for m in self.lm.modules() if isinstance(m, nn.LayerNorm)]
        if not norms:
            return 1e6
        ln = norms[-1]
        w = float(ln.weight.abs().max()) if ln.weight is not None else 1.0
        b = float(ln.bias.abs().max()) if ln.bias is not None else 0.0
        return 2.0 * (ln.normalized_shape[-1] ** 0.5 * w + b)

    def _check_memory(self, memory: torch.Tensor, batch: int) -> None:
        """(batch, slots, slot_dim): ``n_slots`` slots in the study, any number for the reader (a
        reader may train on more slots than an agent writes)."""
        d = self.mem_cfg.slot_dim
        if memory.dim() != 3 or memory.shape[0] != batch or memory.shape[2] != d or memory.shape[1] < 1:
            raise UserError(f"memory has shape {tuple(memory.shape)}; expected ({batch}, {self.mem_cfg.n_slots}, {d})")
        if self.slot_embed is not None and memory.shape[1] > self.mem_cfg.n_slots:
            raise UserError(f"memory has {memory.shape[1]} slots; a reader with slot_order reads at most "
                            f"{self.mem_cfg.n_slots}")

    # ------------------------------------------------------------------ adapters
    def adapter_state(self) -> dict[str, torch.Tensor]:
        """The trainable parameters (LoRA + memory read path): what a fine-tune changes."""
        return {n: p.detach().cpu().contiguous() for n, p in self.named_parameters() if p.requires_grad}

    def save_adapters(self, path: str | Path) -> Path:
        """Save the trainable parameters with safetensors (atomically) plus their settings."""
        from ltm_gym.core import atomic_write
        from ltm_gym.core.checkpoint import save_tensors

        path = save_tensors(self.adapter_state(), path)
        meta = {"memory": vars(self.mem_cfg), "lora": vars(self.lora_cfg)}
        atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))
        return path

    def load_adapters(self, path: str | Path) -> None:
        from ltm_gym.core.checkpoint import load_tensors

        self.load_adapter_state(load_tensors(path, "adapter file"), str(path))

    def load_adapter_state(self, state: dict[str, torch.Tensor], source: str = "the state") -> None:
        """Copy trainable parameters (:meth:`adapter_state`) into this model, checked by name and shape."""
        own = dict(self.named_parameters())
        unknown = sorted(set(state) - set(own))
        if unknown:
            raise UserError(f"{source} holds parameters this model does not have (e.g. {unknown[:3]}); "
                            "was it saved with other memory/LoRA settings?")
        for name, value in state.items():
            if own[name].shape != value.shape:
                raise UserError(f"{source}: {name} has shape {tuple(value.shape)}, model has {tuple(own[name].shape)}")
            with torch.no_grad():
                own[name].copy_(value)
        self.trunk_changed()
