"""The Recurrent Memory Transformer (RMT) over a study's own causal LM.

Each segment is read as ``[memory; BOS, s_1 .. s_L; memory]``: M memory token embeddings before
the segment, which every segment token attends to (the read), and the same M embeddings after it,
which attend to the whole segment (the write). The final hidden states at the M write positions
are the next segment's memory; the first segment reads M learned initial embeddings. The LM is the
study's (GPT-2 or Llama family: tiny, SmolLM2), fully fine-tuned or adapted with LoRA, and the
memory is trained end to end by backpropagation through the segments of a document.

The written memory is rescaled to the token embeddings' norm (see :attr:`RecurrentMemoryLM.memory_norm`).
Unlike the env's memory (10 x 64 vectors written by an agent and read by cross-attention), the
memory here is M x H (H the LM's width) and lives in the LM's input space.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ltm_gym.core import ConfigError
from ltm_gym.lm import LoraSettings, check_vocab, load_pretrained_lm, token_losses
from ltm_gym.lm.trunk import base_lm
from ltm_gym.core.errors import UserError

Finetune = Literal["full", "lora"]


def study_base_lm(study) -> nn.Module:
    """The causal LM a study reads with: its pre-trained tiny LM, or ``lm.base`` by name or path."""
    from ltm_gym.study.layout import StudyNotFoundError

    base = study.base_dir()
    if base is not None and not base.is_dir():
        raise StudyNotFoundError(f"{base} is missing: the study's LM is not pre-trained; run "
                                 f"`ltm-gym pretrain-lm --study-dir {study.root}`")
    lm = load_pretrained_lm(base if base is not None else study.config.lm.base)
    check_vocab(study.tokenizer, lm)
    return lm


def with_lora(lm: nn.Module, lora: LoraSettings) -> nn.Module:
    """``lm`` with LoRA adapters (only they train in it)."""
    import warnings

    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(lm, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                             target_modules=list(lora.target_modules),
                                             fan_in_fan_out=type(lm).__name__.startswith("GPT2")))


class RecurrentMemoryLM(nn.Module):
    """A causal LM with ``n_memory`` recurrent memory tokens (read before, written after each segment)."""

    def __init__(self, lm: nn.Module, n_memory: int, bos_token_id: int, finetune: Finetune = "full",
                 lora: LoraSettings | None = None, seed: int = 0) -> None:
        super().__init__()
        if n_memory < 1:
            raise ConfigError(f"n_memory={n_memory}; an RMT needs >= 1 memory token")
        if finetune not in ("full", "lora"):
            raise ConfigError(f"finetune={finetune!r}; allowed: full, lora")
        self.n_memory = n_memory
        self.bos_token_id = bos_token_id
        self.finetune = finetune
        positions = getattr(lm.config, "n_positions", None) or getattr(lm.config, "max_position_embeddings", None)
        self.max_positions = int(positions) if positions else None
        if finetune == "lora":
            lm = with_lora(lm, lora or LoraSettings())
        self.lm = lm
        emb = base_lm(lm).get_input_embeddings().weight
        g = torch.Generator().manual_seed(seed)
        init = torch.randn(n_memory, emb.shape[1], generator=g) * float(emb.detach().float().std())
        self.memory_init = nn.Parameter(init.to(emb.dtype))
        """The first segment's memory: learned embeddings, drawn at the scale of the token embeddings."""
        self.register_buffer("memory_norm", emb.detach().float().norm(dim=1).mean().reshape(()), persistent=False)
        """The norm each written memory vector is scaled to: the mean norm of a token embedding.
        The final hidden states are far larger (on the tiny LM ~50 times, behind the last LayerNorm),
        and fed back as they are, the old memory would dominate the write positions' residual
        stream, so that each write changed the memory little."""

    @property
    def hidden(self) -> int:
        return self.memory_init.shape[1]

    def check_length(self, segment_len: int) -> None:
        """Memory, BOS, segment and memory must fit the LM's positions."""
        need = 2 * self.n_memory + segment_len + 1
        if self.max_positions is not None and need > self.max_positions:
            raise ConfigError(f"n_memory={self.n_memory}: 2 x {self.n_memory} memory tokens + BOS + {segment_len} "
                              f"segment tokens = {need} positions; the LM has {self.max_positions}")

    def initial_memory(self, batch: int) -> torch.Tensor:
        return self.memory_init[None].expand(batch, -1, -1)

    def forward(self, ids: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states (B, L, H) from which each token of ``ids`` (B, L) is predicted, and the
        next memory (B, M, H), from the current ``memory`` (B, M, H)."""
        B, L = ids.shape
        M = self.n_memory
        inner = base_lm(self.lm)
        tokens = torch.cat([ids.new_full((B, 1), self.bos_token_id), ids], dim=1)
        embeds = inner.get_input_embeddings()(tokens)
        memory = memory.to(embeds.dtype)
        x = torch.cat([memory, embeds, memory], dim=1)                       # (B, M + 1 + L + M, H)
        hidden = inner.base_model(inputs_embeds=x).last_hidden_state
        written = hidden[:, -M:]
        written = written * (self.memory_norm / written.norm(dim=-1, keepdim=True).clamp_min(1e-6)).to(written.dtype)
        return hidden[:, M : M + L], written

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The output layer on hidden states (..., H) -> (..., V)."""
        return base_lm(self.lm).get_output_embeddings()(hidden)

    def token_losses(self, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and CE (in fp32 at least) of ``targets`` (...) from ``hidden`` (..., H)."""
        logits = self.logits(hidden)
        return logits, token_losses(logits, targets)

    # ------------------------------------------------------------------ saving
    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().contiguous() for n, p in self.named_parameters() if p.requires_grad}

    def save(self, path: str | Path) -> Path:
        """The trained parameters (the memory embeddings and the LM's or its adapters'), safetensors."""
        from ltm_gym.core.checkpoint import save_tensors

        return save_tensors(self.trainable_state(), path)

    def load(self, path: str | Path) -> None:
        from ltm_gym.core.checkpoint import load_tensors

        state = load_tensors(path, "RMT weights file")
        own = dict(self.named_parameters())
        bad = sorted(n for n in state if n not in own or own[n].shape != state[n].shape)
        if bad:
            raise UserError(f"{path} does not fit this model (e.g. {bad[:3]}); was it saved with another "
                            "study, n_memory or finetune?")
        with torch.no_grad():
            for name, value in state.items():
                own[name].copy_(value)
