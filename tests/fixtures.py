"""Small corpora, tokenizers and LMs that tests build themselves (no network, a few seconds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from ltm_gym.core import load_config
from ltm_gym.study import StudyConfig


def tiny_study_config(**overrides) -> StudyConfig:
    base = {
        "name": "test",
        "corpus": {"synthetic": {"n_documents": 40, "n_segments": 3, "segment_len": 32, "n_facts": 2,
                                 "n_keys": 16, "n_values": 8, "filler_words": 24},
                   "segment_len": 32, "min_tokens": 64, "vocab_size": 512},
        "lm": {"tiny": {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 128},
               "memory": {"n_slots": 4, "slot_dim": 16}, "lora": {"r": 4}},
        "pretrain": {"batch_size": 4, "context_segments": 2, "induction_hint": 0.0,
                     "train": {"steps": 4, "device": "cpu", "progress": False, "log_every": 1}},
        "lora": {"batch_size": 4, "train": {"steps": 3, "device": "cpu", "progress": False, "log_every": 1}},
        "memory": {"batch_size": 4, "train": {"steps": 3, "device": "cpu", "progress": False, "log_every": 1}},
        "select": {"batch_size": 4, "fact_memories": 0.0, "train": {"steps": 3, "device": "cpu", "progress": False, "log_every": 1}},
        "eval_batch": 8,
        "oracle_segments": 1,
    }
    return load_config(StudyConfig, base, overrides or None)


def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "tokenizers"


ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """A script of scripts/ as a module (so tests call its main with arguments)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
