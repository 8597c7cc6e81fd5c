import json

import pytest
import torch
import yaml

from ltm_gym.data.tasks import task_documents
from ltm_gym.study.scoring import stated_facts
from tests.fixtures import load_script

TASK = {"name": "tiny-d2", "distance": 2, "n_segments": 6, "n_facts": 2, "n_documents": 30}   # 3 test documents


def test_stated_facts_is_the_segment_stating_what_a_segment_asks(tiny_study):
    from ltm_gym.data.tasks import TaskConfig

    docs = task_documents(TaskConfig(**TASK), tiny_study.config.corpus, tiny_study.tokenizer)["test"]
    remember = tiny_study.tokenizer(" remember", add_special_tokens=False)["input_ids"]
    for doc in docs:
        assert len(stated_facts(doc, 1)) == 0                                   # segment 1 asks nothing
        for t in range(2, 6):
            assert torch.equal(stated_facts(doc, t), doc.ids[t - 2])           # fixed distance: the source
    mixed = TaskConfig(distance=1, max_distance=3, n_segments=8, n_facts=1, n_distractors=1, n_documents=30)
    for doc in task_documents(mixed, tiny_study.config.corpus, tiny_study.tokenizer)["test"]:
        for t in range(1, 8):
            ctx = stated_facts(doc, t)
            asked = doc.ids[t][doc.answer_mask[t]].tolist()
            if not asked:
                assert len(ctx) == 0
                continue
            pairs = {(int(ctx[p - 1]), int(ctx[p])) for p in range(3, len(ctx)) if ctx[p - 3] == remember[0]}
            keys = doc.ids[t][doc.answer_mask[t].roll(-1)].tolist()            # the token before each answer
            assert set(zip(keys, asked)) <= pairs                               # every asked fact is stated


def test_ladder_script_prints_the_references_and_an_agent(default_study, tmp_path, capsys):
    task = tmp_path / "tiny-d2.yaml"
    task.write_text(yaml.safe_dump(TASK))
    run = tmp_path / "run"
    load_script("train_agent").main(["--algo", "reinforce", "--steps", "24", "--num-envs", "4", "--run-dir", str(run),
                                     "--device", "cpu", "--set", "rollout=episode", "--set", "group_size=2",
                                     "--env-kwargs", f"task={task}", "task.n_documents=15", "action_mode=select",
                                     "adapters=select", "reward_mode=answer", "device=cpu"])
    stored = yaml.safe_load((run / "config.yaml").read_text())["env_kwargs"]["task"]
    assert stored == {"name": str(task), "n_documents": 15}
    capsys.readouterr()
    load_script("eval_ladder").main(["--tasks", str(task), "--documents", "3", "--device", "cpu",
                                     "--agent-runs", str(run), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    for row in ("lora_baseline", "oracle", "store[select]", "fifo[select]", "keep[select]", "agent:run"):
        assert f"| {row} |" in out
    summaries = json.loads((tmp_path / "out" / "tiny-d2.json").read_text())
    assert summaries["keep[select]"]["held"] == 1.0 and summaries["store[select]"]["held"] == 0.0
    assert summaries["lora_baseline"]["gap"] == 0.0 and summaries["oracle"]["gap"] == 1.0
    assert set(summaries["agent:run"]) >= {"recall_d2", "held", "gap_lo", "gap_hi"}
    load_script("eval_ladder").main(["--tasks", str(task), "--documents", "2", "--device", "cpu", "--readers",
                                     "--agent-runs", str(run), "--out", str(tmp_path / "bare")])
    assert set(json.loads((tmp_path / "bare" / "tiny-d2.json").read_text())) == {"lora_baseline", "oracle", "agent:run"}
    with pytest.raises(Exception, match="recall-d9"):
        load_script("eval_ladder").main(["--tasks", "recall-d9"])


def test_family_scores_normalize_between_no_memory_and_the_oracle_and_refuse_a_thin_lead():
    from ltm_gym.cli.eval_ladder import MIN_ORACLE_LEAD, family_scores

    def level(none: float, oracle: float, agent: float) -> dict:
        return {"lora_baseline": {"recall_acc": none}, "oracle": {"recall_acc": oracle}, "agent:a": {"recall_acc": agent}}

    text = family_scores({"babi-qa1-1k": level(0.2, 1.0, 0.6), "babi-qa1-4k": level(0.2, 0.6, 0.5),
                          "recall-d4": level(0.0, 0.0, 0.0)})
    assert "mean over 2 lengths" in text and "| agent:a | +0.625 |" in text      # (0.5 + 0.75) / 2; recall-d4 not a family
    thin = family_scores({"babi-qa1-64k": level(0.067, 0.067 + MIN_ORACLE_LEAD / 3, 0.6)})
    assert "n/a" in thin and "agent:a" not in thin
