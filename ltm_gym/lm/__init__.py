"""LLM-LTM: any HF causal LM + a memory read path (cross-attention, prefix, or spelled slots read as text) + LoRA.

Does not know it is inside an environment.
"""

from .loading import TinyGPT2, build_tiny_gpt2, check_vocab, load_pretrained_lm
from .memory import (MemoryCrossAttention, embedding_memory, fixed_projection, previous_segment_memory,
                     selection_codes, tokens_before)
from .model import LLMLTM, LoraSettings, MemorySettings, find_blocks, token_losses
from .setup import LMConfig, build_llmltm

__all__ = [
    "LLMLTM", "LMConfig", "LoraSettings", "MemoryCrossAttention", "MemorySettings", "TinyGPT2",
    "build_llmltm", "build_tiny_gpt2", "check_vocab", "embedding_memory", "find_blocks",
    "fixed_projection", "load_pretrained_lm", "previous_segment_memory", "selection_codes", "token_losses",
    "tokens_before",
]
