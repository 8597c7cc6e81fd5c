"""The study's config: the tiny preset is the one source of defaults, each stage has its own fields."""

import pytest
import yaml

from ltm_gym.core import ConfigError, load_config, save_config, to_dict
from ltm_gym.study import PretrainConfig, StudyConfig, load_study_config


def test_the_python_defaults_are_the_tiny_preset():
    assert to_dict(StudyConfig()) == to_dict(load_study_config("tiny"))


def test_a_stage_refuses_another_stages_field_by_name():
    with pytest.raises(ConfigError, match="context_segments"):
        load_config(StudyConfig, {"select": {"context_segments": 2}})
    with pytest.raises(ConfigError, match="fact_memories"):
        load_config(StudyConfig, {"pretrain": {"fact_memories": 0.5}})
    assert load_config(StudyConfig, {"memory": {"uninformative": 0.25}}).memory.uninformative == 0.25


def test_a_study_directory_written_with_one_stage_class_still_loads(tmp_path):
    old = to_dict(load_study_config("babi-tiny"))
    for stage in ("pretrain", "lora", "memory", "select"):     # every stage carried every field then
        old[stage] = {**{"context_segments": 1, "induction_hint": 0.0, "induction_hint_steps": 0,
                         "all_positions": 1.0, "fact_memories": 0.0, "answer_weight": 0.0,
                         "answer_loss": False, "uninformative": 0.0}, **old[stage]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    loaded = load_study_config(path)
    assert to_dict(loaded) == to_dict(load_study_config("babi-tiny"))
    save_config(loaded, path)
    assert "all_positions" not in yaml.safe_load(path.read_text())["pretrain"]


def test_the_validation_batch_drops_training_noise_only():
    sc = PretrainConfig(batch_size=8, induction_hint=1.0, answer_weight=2.0)
    val = sc.validation()
    assert (val.batch_size, val.induction_hint, val.answer_weight, val.context_segments) == (64, 0.0, 2.0, 2)
    assert load_study_config("tiny", ["memory.uninformative=0.5"]).memory.validation().uninformative == 0.0


def test_memories_of_every_fact_need_a_reader_that_knows_the_slots_order():
    crossed = ["lm.memory.read_path=cross_attention", "lm.memory.query_code=true"]
    with pytest.raises(ConfigError, match="held_facts"):                    # cross-attention without slot_order
        load_study_config("babi-tiny", crossed)
    with pytest.raises(ConfigError, match="held_facts"):                    # slot_order without them
        load_study_config("babi-spelled", ["select.held_facts=asked"])
    text = load_study_config("babi-tiny")
    assert text.select.held_facts == "all" and not text.lm.memory.slot_order   # read as text: oldest first
    assert load_study_config("babi-tiny", crossed + ["select.held_facts=asked"]).lm.memory.read_path == "cross_attention"


def test_a_select_stage_on_a_levels_documents_draws_no_fresh_ones():
    with pytest.raises(ConfigError, match="fresh_documents"):                # the tiny preset draws fresh ones
        load_study_config("tiny", ["select.task=babi-qa1-1k"])
    assert load_study_config("tiny", ["select.task=babi-qa1-1k", "select.fresh_documents=false"]).select.task
