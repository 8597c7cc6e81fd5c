"""Base LMs: the tiny GPT-2 built from a config, or any HF causal LM by name, local path or GGUF file.

Nothing is downloaded: a name must already be in the local HuggingFace cache, otherwise loading
fails at once with a message that says what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ltm_gym.core import check
from ltm_gym.core.sources import model_source
from ltm_gym.core.errors import UserError


@dataclass
class TinyGPT2:
    """Architecture of the embedded tiny GPT-2 (trained on the synthetic corpus in minutes)."""

    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 512
    init_std: float = 0.02
    """Standard deviation of the initial weights (GPT-2's ``initializer_range``). Attention weights
    this small start every query-key product near zero, where a head that must match two learned
    features (the asked actor's and a fact's) gets almost no gradient: the bAbI study starts wider."""
    tie_embeddings: bool = False
    """Tie the output layer to the token embeddings. Untied by default: a byte-level BPE has many
    tokens the corpus never produces, and tied rows that are pushed down for them drag the input
    embeddings along, which stalls the induction (copying) a small LM must learn."""

    def validate(self) -> None:
        check(self.n_embd % self.n_head == 0, "tiny.n_embd", self.n_embd, f"a multiple of n_head={self.n_head}")
        check(self.n_layer >= 1, "tiny.n_layer", self.n_layer, ">= 1")
        check(0 < self.init_std <= 1, "tiny.init_std", self.init_std, "in (0, 1]")


def build_tiny_gpt2(arch: TinyGPT2, vocab_size: int, bos_token_id: int, seed: int = 0) -> nn.Module:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=vocab_size, n_positions=arch.n_positions, n_embd=arch.n_embd,
                        n_layer=arch.n_layer, n_head=arch.n_head, bos_token_id=bos_token_id,
                        eos_token_id=bos_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        tie_word_embeddings=arch.tie_embeddings, initializer_range=arch.init_std)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def _from_pretrained(name: str, **kwargs) -> nn.Module:
    """``AutoModelForCausalLM.from_pretrained`` without its per-load progress bars (a study loads
    its LM once per env, stage and evaluation): transformers' own, and the plain tqdm bar of its
    GGUF de-quantization, which its switch does not reach."""
    import contextlib
    from unittest import mock

    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    quiet = contextlib.nullcontext()
    if "gguf_file" in kwargs:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils

        quiet = mock.patch.object(gguf_utils, "tqdm", lambda items, *a, **k: items)
    try:
        with quiet:
            return AutoModelForCausalLM.from_pretrained(name, **kwargs)
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def load_pretrained_lm(name_or_path: str | Path) -> nn.Module:
    """An HF causal LM from a local directory, a GGUF file (or a packaged one such as
    ``smollm2-135m``, :mod:`ltm_gym.core.sources`), or by name from the local cache only."""
    source = model_source(name_or_path)
    try:
        return _from_pretrained(source.location, **source.kwargs())
    except OSError as exc:
        if source.on_disk:
            raise OSError(f"cannot load a causal LM from {name_or_path}: {exc}") from None
        cache = os.environ.get("HF_HOME", "~/.cache/huggingface")
        raise OSError(
            f"model {str(name_or_path)!r} is neither a local directory nor in the HuggingFace cache ({cache}); "
            f"this package never downloads at run time: fetch it where there is network "
            f"(huggingface-cli download {name_or_path}) or pass a local path") from None


def check_vocab(tokenizer, lm: nn.Module) -> None:
    """Every token id the tokenizer can produce must have an embedding row."""
    rows = lm.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise UserError(f"tokenizer has {len(tokenizer)} tokens but the model's embedding has only {rows} rows: "
                        "they do not belong together")
