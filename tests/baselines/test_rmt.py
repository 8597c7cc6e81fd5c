import json

import pytest
import torch

from ltm_gym.baselines.rmt import RMTConfig, RMTSetup, evaluate_rmt, load_rmt, rmt_metrics, stage_tasks, train_rmt, unroll
from ltm_gym.baselines.rmt.curriculum import document_batch, stage_at
from ltm_gym.core import ConfigError, load_config
from ltm_gym.data.tasks import load_task
from tests.fixtures import load_script

TASK = {"name": "recall-d2", "n_segments": 4, "n_facts": 1, "n_documents": 30}


def small_cfg(study, **over) -> RMTConfig:
    base = {"study_dir": str(study.root), "task": TASK, "n_memory": 4, "batch_size": 4, "stage_steps": 2,
            "train": {"steps": 4, "lr": 3e-3, "device": "cpu", "progress": False, "log_every": 1, "eval_every": 0,
                      "precision": "fp32"},
            "eval_documents": 4, "device": "cpu"}
    return load_config(RMTConfig, base, over or None)


def test_automatic_curriculum_doubles_the_span_up_to_the_task():
    d4 = load_task("recall-d4")
    assert [t.distance for t in stage_tasks(d4, 64)] == [1, 2, 4]
    assert stage_tasks(d4, 64)[-1] is d4
    qa = load_task("babi-qa1-4k")
    assert [t.tokens for t in stage_tasks(qa, 64)] == [128, 256, 512, 1024, 2048, 4096]
    assert [t.distance for t in stage_tasks(load_task("recall-d4"), 64, [])] == [4]
    assert len(stage_tasks(load_task("recall-mixed"), 64)) == 1          # no shorter span of mixed distances


def test_a_bad_curriculum_stage_names_its_field():
    with pytest.raises(ConfigError, match="distanse"):
        stage_tasks(load_task("recall-d4"), 64, [{"distanse": 1}])
    with pytest.raises(ConfigError, match="task.distance"):
        stage_tasks(load_task("recall-d4"), 64, [{"distance": 0}])


def test_stages_advance_every_stage_steps_and_the_last_runs_on():
    assert [stage_at(s, 10, 3) for s in (0, 9, 10, 19, 20, 500)] == [0, 0, 1, 1, 2, 2]
    assert stage_at(0, 0, 3) == 2


@pytest.mark.parametrize("over, match", [({"n_memory": 0}, "n_memory"), ({"finetune": "half"}, "finetune"),
                                         ({"task": "recall-d5"}, "recall-d5"), ({"bptt": -1}, "bptt")])
def test_bad_settings_are_named(over, match):
    with pytest.raises(ConfigError, match=match):
        load_config(RMTConfig, over)


def test_too_many_memory_tokens_for_the_positions_are_refused(tiny_study):
    with pytest.raises(ConfigError, match="positions"):
        RMTSetup(small_cfg(tiny_study, n_memory=60))                     # 2 x 60 + 1 + 32 > 128


def test_the_segment_reads_the_memory_and_the_write_reads_the_segment(tiny_study):
    model = RMTSetup(small_cfg(tiny_study)).model.eval()
    ids = torch.randint(5, 100, (2, 32))
    memory = model.initial_memory(2)
    hidden, nxt = model(ids, memory)
    assert hidden.shape == (2, 32, model.hidden) and nxt.shape == (2, 4, model.hidden)
    other = ids.clone()
    other[:, 3] += 1
    h2, n2 = model(other, memory)
    assert torch.allclose(h2[:, :3], hidden[:, :3], atol=1e-6)            # causal: position 3 changes only what follows
    assert not torch.allclose(n2, nxt)                                    # the write sees the whole segment
    h3, _ = model(ids, memory + 1.0)
    assert not torch.allclose(h3[:, 0], hidden[:, 0])                    # the first token already reads the memory


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_a_llama_family_lm_reads_and_writes_the_memory(finetune):
    """The RMT wraps a Llama-family LM (SmolLM2's) as it wraps GPT-2: rotary positions over
    [memory; BOS, segment; memory], LoRA on its own projections, gradients into the first memory."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ltm_gym.baselines.rmt import RecurrentMemoryLM
    from ltm_gym.lm import LoraSettings

    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128))
    model = RecurrentMemoryLM(lm, 3, bos_token_id=1, finetune=finetune,
                              lora=LoraSettings(target_modules=("q_proj", "v_proj")))
    ids = torch.randint(5, 100, (2, 16))
    memory = model.initial_memory(2)
    hidden, nxt = model(ids, memory)
    assert hidden.shape == (2, 16, 32) and nxt.shape == (2, 3, 32)
    assert torch.allclose(nxt.norm(dim=-1), model.memory_norm.expand(2, 3), rtol=1e-4)   # rescaled to the embeddings
    other = ids.clone()
    other[:, 5] += 1
    h2, n2 = model(other, memory)
    assert torch.allclose(h2[:, :5], hidden[:, :5], atol=1e-5) and not torch.allclose(n2, nxt)
    logits, losses = model.token_losses(model(ids, nxt)[0], ids)
    losses.mean().backward()                                             # segment 2 reads what segment 1 wrote
    assert logits.shape == (2, 16, 120) and model.memory_init.grad.abs().sum() > 0
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert finetune == "full" or all(n == "memory_init" or "lora_" in n for n in trained)


def test_truncation_stops_the_gradient_before_the_first_memory(tiny_study):
    setup = RMTSetup(small_cfg(tiny_study))
    batch = document_batch(setup.documents(setup.task, "train"), 3, torch.Generator().manual_seed(0))
    assert batch["answer_mask"][:, 0].sum() == 0                         # answers come after the first segment

    def grad(bptt: int) -> torch.Tensor | None:
        setup.model.zero_grad()
        loss, stats = unroll(setup.model, batch, bptt)
        loss.backward()
        assert 0 <= stats["recall"] <= 1
        return setup.model.memory_init.grad

    assert grad(0).abs().sum() > 0                                       # through every write to the initial memory
    g1 = grad(1)
    assert g1 is None or g1.abs().sum() == 0


def test_the_evaluation_row_scores_what_the_loss_scores(tiny_study):
    setup = RMTSetup(small_cfg(tiny_study))
    docs = setup.documents(setup.task, "test")[:5]
    batch = {"ids": torch.stack([d.ids for d in docs]), "answer_mask": torch.stack([d.answer_mask for d in docs])}
    with torch.no_grad():
        _, stats = unroll(setup.model, batch)
    row = rmt_metrics(setup.model, docs, batch=2, device="cpu").summary()
    assert row["answer_ce"] == pytest.approx(stats["answer_ce"], abs=1e-4)
    assert row["recall_acc"] == pytest.approx(stats["recall"], abs=1e-6)
    assert any(k.startswith("recall_d2") for k in row)                  # by distance, as the agents' rows


def test_lora_trains_only_the_adapters_and_the_memory(tiny_study):
    model = RMTSetup(small_cfg(tiny_study, finetune="lora")).model
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert "memory_init" in names and all(n == "memory_init" or "lora_" in n for n in names)
    full = RMTSetup(small_cfg(tiny_study)).model
    assert sum(p.numel() for p in full.parameters() if p.requires_grad) > 10 * sum(
        p.numel() for p in model.parameters() if p.requires_grad)


def test_train_resume_and_reload_give_the_same_row(tiny_study, tmp_path):
    cfg = small_cfg(tiny_study)
    setup = train_rmt(cfg, tmp_path / "run")
    curriculum = json.loads((tmp_path / "run" / "curriculum.json").read_text())
    assert [s["from_step"] for s in curriculum] == [0, 2]
    docs = setup.documents(setup.task, "test")[:6]
    before = rmt_metrics(setup.model, docs, device="cpu").summary()
    again = load_rmt(tmp_path / "run", device="cpu")
    assert rmt_metrics(again.model, docs, device="cpu").summary() == pytest.approx(before)
    resumed = train_rmt(cfg, tmp_path / "run")                            # finished: loaded, not trained again
    assert rmt_metrics(resumed.model, docs, device="cpu").summary() == pytest.approx(before)
    tables = evaluate_rmt(again, n_documents=6)
    rows = tables[again.task.name]
    assert set(rows) == {"lora_baseline", "oracle", "rmt"}


def test_the_command_prints_the_task_table(tiny_study, tmp_path, capsys):
    main = load_script("train_rmt").main
    main(["--run-dir", str(tmp_path / "cli"), "--set", f"study_dir={tiny_study.root}", "--set", "task=recall-d2",
          "--set", "task.n_segments=4", "--set", "task.n_facts=1", "--set", "task.n_documents=30", "--set", "n_memory=4", "--set", "batch_size=2",
          "--set", "train.steps=2", "--set", "train.progress=false", "--set", "device=cpu", "--eval", "--documents", "4"])
    out = capsys.readouterr().out
    assert "| rmt |" in out and "lora_baseline" in out and "gap closed" in out
    assert (tmp_path / "cli" / "rmt.safetensors").is_file()


def test_fresh_training_documents_leave_the_test_split_unseen(tiny_study):
    from ltm_gym.baselines.rmt.curriculum import training_task

    setup = RMTSetup(small_cfg(tiny_study))
    assert training_task(setup.task, 0) is setup.task
    fresh = training_task(setup.task, 50)
    own = {tuple(d.ids.flatten().tolist()) for d in setup.documents(setup.task, "test")}
    drawn = setup.documents(fresh, "train")
    assert len(drawn) >= 35 and not own & {tuple(d.ids.flatten().tolist()) for d in drawn}
    with pytest.raises(ConfigError, match="train_documents"):
        small_cfg(tiny_study, train_documents=-1)
