"""The study presets load and validate, and say what they are for."""

from ltm_gym.core import load_config
from ltm_gym.study import StudyConfig


def test_the_smollm2_recall_preset_keeps_its_trunk_frozen_and_cacheable():
    cfg = load_config(StudyConfig, "smollm2-recall")
    assert cfg.lm.base == cfg.corpus.tokenizer == "smollm2-135m"
    assert cfg.lm.lora.layers == "memory" and cfg.lm.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.lm.memory.code_context == 5 and cfg.lm.memory.read_scale > 1
    assert not any(getattr(cfg, s).fresh_documents for s in ("lora", "memory", "select"))
    assert cfg.select.answer_loss and cfg.corpus.segment_len == cfg.corpus.synthetic.segment_len == 64
