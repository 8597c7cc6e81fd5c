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


def test_the_smollm2_natural_text_preset_reads_linked_pages_with_carried_answers():
    cfg = load_config(StudyConfig, "smollm2-gimp-help")
    assert cfg.corpus.source.endswith(".jsonl") and cfg.corpus.answer_tokens == "carried"
    assert cfg.corpus.max_segments and cfg.corpus.max_links and cfg.corpus.link_chars
    assert cfg.lm.lora.layers == "memory" and cfg.lm.memory.read_path == "cross_attention"
    assert not any(getattr(cfg, s).fresh_documents for s in ("lora", "memory", "select"))
    assert cfg.select.fact_memories == 0 and not cfg.select.answer_loss    # natural text: every position's loss
