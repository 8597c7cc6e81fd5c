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


def test_the_spelled_babi_preset_is_the_first_babi_tiny_with_another_select_reader(tmp_path):
    """babi-spelled keeps the first babi-tiny's corpus and LM stages (GPT-2's initial weights, no
    answer hint, one question a document); babi-tiny now differs from it in those three alone. Its
    reader reads spelled slots and is trained on every fact of qa1 questions with the read hint, and
    it has no hypothesis-2 stage. babi-tiny's reader is the LM itself, reading the slots as text, tuned
    on memories of every fact of babi-qa1-1k documents."""
    from ltm_gym.core import to_dict
    from ltm_gym.study.layout import StudyDir
    from ltm_gym.study.stages import stages_for

    spelled, tiny = load_config(StudyConfig, "babi-spelled"), load_config(StudyConfig, "babi-tiny")
    assert (spelled.lm.tiny.init_std, spelled.pretrain.answer_hint, spelled.corpus.babi.questions) == (0.02, 0.0, 1)
    assert (tiny.lm.tiny.init_std, tiny.pretrain.answer_hint, tiny.corpus.babi.questions) == (0.05, 1.0, 4)
    first = load_config(StudyConfig, {**to_dict(tiny), "lm": {**to_dict(tiny.lm), "tiny": to_dict(spelled.lm.tiny)},
                                      "pretrain": {**to_dict(tiny.pretrain), "answer_hint": 0.0},
                                      "corpus": {**to_dict(tiny.corpus), "babi": to_dict(spelled.corpus.babi)}})
    for part in ("corpus", "pretrain", "lora"):
        assert to_dict(getattr(spelled, part)) == to_dict(getattr(first, part))
    assert to_dict(spelled.lm.tiny) == to_dict(first.lm.tiny)
    m = spelled.lm.memory
    assert m.spelled and m.spells and m.slot_order and m.query_code and m.read_path == "cross_attention"
    assert spelled.select.held_facts == "all" and spelled.select.supporting_facts == 1 and spelled.select.read_hint > 0
    assert stages_for(StudyDir(tmp_path / "s", spelled)) == ["pretrain", "lora", "select"]
    assert stages_for(StudyDir(tmp_path / "t", tiny)) == ["pretrain", "lora", "select"]
    assert tiny.lm.memory.read_path == "tokens" and tiny.select.held_facts == "all" and tiny.select.task == "babi-qa1-1k"
