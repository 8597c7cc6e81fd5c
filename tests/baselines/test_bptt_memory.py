import json

import numpy as np
import pytest
import torch
import yaml

from ltm_gym.agents.evaluation import agent_metrics
from ltm_gym.baselines.bptt_memory import (BPTTConfig, WriterAgent, build_writer, document_batch, load_writer, train_writer,
                                   unroll)
from ltm_gym.core import ConfigError, load_config, to_dict
from ltm_gym.envs import LLMMemoryEnv, Reward
from tests.fixtures import load_script, tiny_study_config

def small_cfg(**over) -> BPTTConfig:
    base = {"batch_size": 4, "tbptt": 2, "writer": {"d_model": 16, "n_head": 2},
            "train": {"steps": 3, "lr": 3e-3, "device": "cpu", "progress": False, "log_every": 1, "eval_every": 0},
            "eval_documents": 4, "device": "cpu"}
    return load_config(BPTTConfig, base, over or None)


def test_bad_reward_mode_is_named():
    with pytest.raises(ConfigError, match="mimic"):
        load_config(BPTTConfig, {"reward": {"mode": "mimic"}})


def test_unroll_loss_is_the_table_ce_of_the_writer(backend):
    """The training objective (full reward) and the writer's evaluation row score the same segments."""
    cfg = small_cfg()
    torch.manual_seed(0)
    writer = build_writer(backend, cfg)
    docs = backend.docs("test")
    batch = {"ids": torch.stack([d.ids for d in docs]), "answer_mask": torch.stack([d.answer_mask for d in docs])}
    with torch.no_grad():
        loss, extra = unroll(writer, Reward(backend, cfg.reward), batch, cfg)
    row = agent_metrics(WriterAgent(writer), LLMMemoryEnv(backend=backend, split="test", reward_mode="full")).summary()
    assert float(loss) == pytest.approx(row["ce"], abs=1e-5)
    assert extra["answer_ce"] == pytest.approx(row["answer_ce"], abs=1e-5)


def test_truncation_cuts_the_gradient_through_earlier_writes(backend):
    cfg = small_cfg()
    torch.manual_seed(0)
    writer = build_writer(backend, cfg)
    g = torch.Generator().manual_seed(0)
    batch = document_batch(backend.docs("train"), 3, None, g)
    assert batch["ids"].shape[1] == 3                      # two writes per document

    def grad_of_mean_head(tbptt: int) -> torch.Tensor:
        writer.zero_grad()
        cfg.tbptt = tbptt
        loss, _ = unroll(writer, Reward(backend, cfg.reward), batch, cfg)
        loss.backward()
        return writer.mean.weight.grad.clone()

    # the first write reads a zero memory, the second reads the first: with tbptt=1 the second
    # reward's gradient stops at that memory, with tbptt=2 it reaches the first write too
    g1, g2 = grad_of_mean_head(1), grad_of_mean_head(2)
    assert not torch.allclose(g1, g2)
    with torch.no_grad():                                   # truncation changes gradients, not the loss
        l1, l2 = (float(unroll(writer, Reward(backend, cfg.reward), batch, small_cfg(tbptt=n))[0]) for n in (1, 2))
    assert l1 == pytest.approx(l2)


def test_prefix_batches_carry_lengths(backend):
    b = document_batch(backend.docs("train"), 2, 4, torch.Generator().manual_seed(1))
    L = b["ids"].shape[-1]
    assert b["lengths"].shape == (2, b["ids"].shape[1] - 1, 4)
    assert int(b["lengths"].min()) >= 1 and int(b["lengths"].max()) <= L


def test_training_lowers_the_loss_resumes_and_warm_starts_reinforce(backend, tmp_path):
    cfg = small_cfg(train_reader=False, train={"steps": 30, "lr": 1e-2, "eval_every": 30, "ckpt_every": 10})
    before = {n: p.detach().clone() for n, p in backend.model.named_parameters()}
    writer, _ = train_writer(cfg, tmp_path, backend=backend)
    for n, p in backend.model.named_parameters():           # the reader stayed as it was
        assert torch.equal(p, before[n]), n
    assert not (tmp_path / "reader.safetensors").exists()
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in rows if r["split"] == "train"]
    assert len(train_losses) == 30
    assert np.mean(train_losses[-5:]) < np.mean(train_losses[:5])
    assert [r["step"] for r in rows if r["split"] == "eval"] == [30]
    # resuming a finished run does not train again and gives the same writer
    again, _ = train_writer(cfg, tmp_path, backend=backend)
    for (n, a), b in zip(writer.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), n
    loaded = load_writer(tmp_path, backend, cfg)
    obs = {"tokens": backend.docs("test")[0].ids[:1].numpy(), "memory": np.zeros((1, backend.n_slots, backend.slot_dim),
                                                                                  np.float32)}
    # REINFORCE starts from the writer: its deterministic action is the writer's
    from ltm_gym.agents.reinforce import ReinforceAgent, ReinforceConfig
    from ltm_gym.envs import LLMMemoryVectorEnv

    env = LLMMemoryVectorEnv(num_envs=2, backend=backend)
    agent = ReinforceAgent(env, ReinforceConfig(writer=cfg.writer, device="cpu"))
    agent.init_from(tmp_path / "writer.pt")
    np.testing.assert_allclose(agent.predict(obs, deterministic=True)[0], WriterAgent(loaded).predict(obs)[0], atol=1e-6)


@pytest.mark.slow
def test_script_trains_evaluates_and_resumes(tmp_path, capsys):
    study_cfg = tmp_path / "study.yaml"
    study_cfg.write_text(yaml.safe_dump(to_dict(tiny_study_config())))
    study = tmp_path / "study"
    load_script("pretrain_lm").main(["--config", str(study_cfg), "--study-dir", str(study)])
    run = tmp_path / "run"
    args = ["--run-dir", str(run), "--set", f"study_dir={study}", "--set", "train.steps=2", "--set", "batch_size=2",
            "--set", "device=cpu", "--set", "train.progress=false", "--set", "writer.d_model=16", "--set", "train.log_every=1"]
    script = load_script("train_bptt_memory")
    script.main(args)
    out = capsys.readouterr().out
    for row in ("lora_baseline", "oracle", "zero_memory", "bptt_writer"):
        assert f"| {row} |" in out
    assert (run / "eval" / "bptt_table.csv").is_file() and (run / "writer.pt").is_file()
    script.main(["--run-dir", str(run), "--resume", "--set", "train.steps=4", "--no-eval"])
    assert load_config(BPTTConfig, run / "config.yaml").train.steps == 4
    steps = [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in r]
    assert steps == [1, 2, 3, 4]          # resumed at 2, not restarted


def test_reader_trains_with_the_writer_and_is_restored(study_data, tmp_path):
    from ltm_gym.envs import MemoryLMBackend
    from ltm_gym.lm import build_llmltm

    model = build_llmltm(tiny_study_config().lm, study_data.tokenizer, seed=0)
    backend = MemoryLMBackend(model, study_data.splits, study_data.tokenizer, device="cpu")
    start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    cfg = small_cfg(train_reader=True, train={"steps": 4, "lr": 1e-2})
    train_writer(cfg, tmp_path, backend=backend)
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert any(not torch.equal(trained[n], start[n]) for n in start)   # the zero-initialized read path moved
    fresh = MemoryLMBackend(build_llmltm(tiny_study_config().lm, study_data.tokenizer, seed=0), study_data.splits,
                            study_data.tokenizer, device="cpu")
    load_writer(tmp_path, fresh, cfg)
    for n, p in fresh.model.named_parameters():
        if n in trained:
            assert torch.equal(p.detach(), trained[n]), n


def test_writer_trains_and_is_evaluated_on_a_memory_task(tiny_study, tmp_path):
    """``task``: the writer unrolls through the task's documents and its row has recall by the
    facts' distance beside the task's LM rows; a bad level is named before anything trains."""
    from ltm_gym.baselines.bptt_memory import evaluate_writer

    with pytest.raises(ConfigError, match="recall-d3"):
        small_cfg(task="recall-d3").validate()
    task = tmp_path / "d2.yaml"
    task.write_text(yaml.safe_dump({"name": "d2", "distance": 2, "n_segments": 6, "n_facts": 1, "n_documents": 15}))
    cfg = small_cfg(study_dir=str(tiny_study.root), adapters="select", task=str(task), tbptt=5)
    writer, backend = train_writer(cfg, tmp_path / "run")
    assert backend.task.distance == 2 and all(d.n_segments == 6 for d in backend.docs("train"))
    rows = {k: v.summary() for k, v in evaluate_writer(writer, backend, cfg).items()}
    assert set(rows) == {"lora_baseline", "oracle", "bptt_writer"}
    assert {k for k in rows["bptt_writer"] if k.startswith("recall_d")} == {"recall_d2"}


def test_the_demos_writer_trains_in_fp32_on_every_cpu():
    """auto would pick bf16 on a CPU with native bf16, and make demo would print another writer row
    there than on an AVX2 machine."""
    assert load_config(BPTTConfig, "bptt-tiny").train.precision == "fp32"
