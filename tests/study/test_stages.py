import pytest
import torch

from ltm_gym.core import ConfigError
from ltm_gym.study import StudyDir
from ltm_gym.study.stages import run_stage
from ltm_gym.study.scoring import study_rows
from ltm_gym.study.reports import COLUMNS, markdown_table, write_tables
from tests.fixtures import tiny_study_config


def test_stages_then_tables(study_data, tmp_path):
    cfg = tiny_study_config()
    study = StudyDir(tmp_path / "study", cfg)
    paths = {s: run_stage(s, study) for s in ("pretrain", "lora", "memory", "select")}
    assert paths == {"pretrain": study.lm_dir, **{s: study.adapter_file(s) for s in ("lora", "memory", "select")}}
    assert (paths["pretrain"] / "config.json").is_file() and (paths["pretrain"] / "tokenizer.json").is_file()
    mtime = paths["lora"].stat().st_mtime
    assert run_stage("lora", study) == paths["lora"]      # finished stages are reused
    assert paths["lora"].stat().st_mtime == mtime
    reopened = StudyDir(tmp_path / "study")               # the stored config is the study's
    baseline, memory = reopened.load_lm("lora"), reopened.load_lm("memory")
    # the memory stages moved the read path away from zero
    assert memory.readers[0].o.weight.abs().sum() > 0
    assert reopened.load_lm("select").readers[0].o.weight.abs().sum() > 0
    rows = study_rows(baseline, memory, study_data.splits["test"], 8, oracle_segments=1, device="cpu")
    summaries = write_tables(tmp_path / "eval", rows)
    assert list(summaries) == ["lora_baseline", "zero_memory", "random_memory", "shuffled_memory",
                               "prev_segment_memory", "oracle"]
    for s in summaries.values():
        assert set(COLUMNS) <= set(s) and s["top100"] >= s["top5"] and 0 <= s["recall_acc"] <= 1
    assert (tmp_path / "eval/lm_table.csv").read_text().count("\n") == 7
    assert "| oracle |" in markdown_table(summaries)
    # a selection agent's reference: the select reader with n_slots random previous positions
    from ltm_gym.lm import selection_codes
    from ltm_gym.study.scoring import random_positions, study_dir_rows

    select = reopened.load_lm("select")
    prev = study_data.splits["test"][0].ids[:2]
    mem = random_positions(3)(select, prev, prev, torch.arange(2))
    codes = selection_codes(select, prev)
    assert mem.shape == (2, cfg.lm.memory.n_slots, cfg.lm.memory.slot_dim)
    assert all(any(torch.equal(slot, c) for c in codes[b]) for b in range(2) for slot in mem[b])
    assert torch.equal(mem, random_positions(3)(select, prev, prev, torch.arange(2)))      # seeded
    with_select = study_dir_rows(reopened, "test", device="cpu", select_reader=True)
    assert list(with_select)[-1] == "select_random_positions" and "select_random_positions" not in \
        study_dir_rows(reopened, "test", device="cpu")
    assert with_select["select_random_positions"].summary()["ce"] != with_select["lora_baseline"].summary()["ce"]


def test_batches(study_data):
    from ltm_gym.data.corpus import fresh_synthetic_documents
    from ltm_gym.study.stages import pair_batch, window_batch

    docs = study_data.splits["train"]
    g = torch.Generator().manual_seed(0)
    w = window_batch(docs, 8, 2, g)["ids"]
    assert w.shape == (8, 64)
    assert any(torch.equal(r, torch.cat([d.ids[0], d.ids[1]])) or torch.equal(r, torch.cat([d.ids[1], d.ids[2]]))
               for r in w for d in docs)                                  # consecutive segments of a document
    p = pair_batch(docs, 4, g)
    assert p["prev"].shape == p["ids"].shape == p["answer_mask"].shape == (4, 32)
    cfg = tiny_study_config()
    n = cfg.corpus.synthetic.n_documents
    fresh = fresh_synthetic_documents(cfg.corpus, study_data.tokenizer, [n, n + 1])
    known = {tuple(d.ids.flatten().tolist()) for split in study_data.splits.values() for d in split}
    assert len(fresh) == 2 and all(tuple(d.ids.flatten().tolist()) not in known for d in fresh)


def test_gap_report():
    from ltm_gym.study.reports import gap_report

    rows = {"lora_baseline": {"answer_ce": 3.9}, "oracle": {"answer_ce": 0.9}, "agent": {"answer_ce": 2.4}}
    assert "agent: +0.500" in gap_report(rows)
    rows["oracle"]["answer_ce"] = 3.85
    assert gap_report(rows).startswith("no recall gap")


def test_answer_gap_interval_is_a_paired_bootstrap_over_documents():
    from ltm_gym.metrics import SegmentMetrics
    from ltm_gym.study.reports import answer_gap_interval, gap_report

    def row(answer_ce: list[float]) -> SegmentMetrics:
        m = SegmentMetrics(ks=(1,))
        for doc, ce in enumerate(answer_ce):
            m.add_info({"token_losses": [ce, ce], "top1": 0.0, "answer_ce": ce, "recall_acc": 0.0,
                        "answer_tokens": 2}, doc_id=doc)
        return m

    base = [4.0, 3.0, 5.0, 4.5, 3.5, 4.2]
    rows = {"lora_baseline": row(base), "oracle": row([c - 2.0 for c in base]),
            "same": row(base), "half": row([c - 1.0 for c in base]),
            "mixed": row([c + (0.5 if i % 2 else -0.5) for i, c in enumerate(base)])}
    assert answer_gap_interval(rows, "same") == (0.0, 0.0)
    assert answer_gap_interval(rows, "half") == pytest.approx((0.5, 0.5))  # paired: the documents' spread cancels
    lo, hi = answer_gap_interval(rows, "mixed")
    assert lo < 0 < hi
    assert answer_gap_interval(rows, "absent") is None
    summaries = {n: m.summary() for n, m in rows.items()}
    assert "half: +0.500  (95% CI +0.500 .. +0.500)" in gap_report(summaries, rows=rows)


def test_ce_difference_is_a_paired_bootstrap_over_documents():
    from ltm_gym.metrics import SegmentMetrics
    from ltm_gym.study.reports import ce_difference_interval, ce_report

    def row(doc_ce: list[list[float]]) -> SegmentMetrics:
        m = SegmentMetrics(ks=(1,))
        for doc, segments in enumerate(doc_ce):
            for ce in segments:
                m.add_info({"token_losses": [ce, ce], "top1": 0.0}, doc_id=doc)
        return m

    base = [[3.0, 2.0], [4.0], [2.5, 3.5, 3.0], [5.0]]
    rows = {"lora_baseline": row(base), "oracle": row([[c - 1 for c in d] for d in base]),
            "better": row([[c - 0.1 for c in d] for d in base]),
            "mixed": row([[c + (0.5 if i % 2 else -0.5) for c in d] for i, d in enumerate(base)])}
    assert ce_difference_interval(rows, "better") == pytest.approx((-0.1, -0.1, -0.1))
    diff, lo, hi = ce_difference_interval(rows, "mixed")
    assert diff == pytest.approx((-0.5 * 2 + 0.5 - 0.5 * 3 + 0.5) / 7) and lo < 0 < hi
    assert ce_difference_interval(rows, "absent") is None
    text = ce_report(rows)
    assert "better: -0.1000  (95% CI -0.1000 .. -0.1000)" in text and "oracle" not in text


def test_pretrain_with_induction_hint_for_its_steps(study_data, tmp_path):
    import json

    cfg = tiny_study_config(pretrain={"induction_hint": 1.0, "induction_hint_steps": 2})
    study = StudyDir(tmp_path / "study", cfg)
    run_stage("pretrain", study)
    rows = [json.loads(r) for r in (study.stage_dir("pretrain") / "metrics.jsonl").read_text().splitlines()]
    train = {r["step"]: r for r in rows if r["split"] == "train"}
    assert [s for s, r in sorted(train.items()) if "induction_hint" in r] == [1, 2]
    assert train[1]["induction_hint"] > 0
    assert cfg.pretrain.hint_at(1) == 1.0 and cfg.pretrain.hint_at(2) == 0.0


def test_select_batches_hold_n_slots_or_more_random_positions(study_data, tmp_path):
    from ltm_gym.study.stages import STAGES

    cfg = tiny_study_config(select={"all_positions": 0.5})
    study = StudyDir(tmp_path / "s", cfg)
    docs = study_data.splits["train"]
    widths = set()
    for step in range(20):
        b = STAGES["select"].batch(study, docs, cfg.select, step, torch.Generator().manual_seed(step))
        widths.add(b["select"].shape[1])
        assert (b["select"].diff(dim=1) > 0).all()                       # distinct positions, in order
    assert 4 in widths and len(widths) > 2 and min(widths) >= 4 and max(widths) <= 32
    model = study.load_lm("none", untrained=True)
    loss, _ = STAGES["select"].loss(model, b)
    assert torch.isfinite(loss)


def test_select_batches_reach_back_the_facts_distance(study_data, tmp_path):
    from ltm_gym.study.stages import STAGES

    cfg = tiny_study_config(corpus={"synthetic": {"distance": 2}})
    study = StudyDir(tmp_path / "s", cfg)
    docs = study_data.splits["train"]
    reach = set()
    for step in range(10):
        b = STAGES["select"].batch(study, docs, cfg.select, step, torch.Generator().manual_seed(step))
        assert b["prev"].shape == (4, 2, 32) and b["ids"].shape == (4, 32)
        for prev, cur in zip(b["prev"], b["ids"]):                       # the two segments just before
            assert any(torch.equal(prev, d.ids[0:2]) and torch.equal(cur, d.ids[2]) for d in docs)
        reach.add(int(b["select"].max()))
    assert max(reach) >= 32 and min(reach) < 64                          # positions of both segments
    model = study.load_lm("none", untrained=True)
    loss, _ = STAGES["select"].loss(model, b)
    assert torch.isfinite(loss)


def test_memory_batches_mix_uninformative_rows(study_data, tmp_path):
    from ltm_gym.lm import previous_segment_memory
    from ltm_gym.study.stages import STAGES, MemoryStage

    stage = STAGES["memory"]
    cfg = tiny_study_config(memory={"uninformative": 0.5})
    study = StudyDir(tmp_path / "s", cfg)
    model = study.load_lm("none", untrained=True)
    docs = study_data.splits["train"]
    seen = set()
    for step in range(6):
        b = stage.batch(study, docs, cfg.memory, step, torch.Generator().manual_seed(step))
        mem, real = stage.memory(model, b), previous_segment_memory(model, b["prev"])
        for i, k in enumerate(b["kind"].tolist()):
            seen.add(k)
            expected = {0: real[i], MemoryStage.ZERO: torch.zeros_like(real[i]),
                        MemoryStage.NOISE: b["noise"][i] * real.std(), MemoryStage.OTHER: real[i - 1]}[k]
            assert torch.allclose(mem[i], expected)
    assert seen == {0, MemoryStage.ZERO, MemoryStage.NOISE, MemoryStage.OTHER}
    plain = stage.batch(study, docs, tiny_study_config().memory, 0, torch.Generator().manual_seed(0))
    assert "kind" not in plain
    assert torch.equal(stage.memory(model, plain), previous_segment_memory(model, plain["prev"]))
    with pytest.raises(ConfigError, match="uninformative"):
        tiny_study_config(memory={"uninformative": 1.0})


def test_select_fact_memories_hold_the_asked_facts_among_others(study_data, tmp_path):
    from ltm_gym.lm import selection_codes
    from ltm_gym.study.stages import FACT_KEPT, STAGES

    cfg = tiny_study_config(select={"fact_memories": 1.0})
    study = StudyDir(tmp_path / "s", cfg)
    docs = study_data.splits["train"]
    model = study.load_lm("none", untrained=True)
    m, L, asked, found = 4, 32, 0, 0
    for step in range(10):
        b = STAGES["select"].batch(study, docs, cfg.select, step, torch.Generator().manual_seed(step))
        assert b["select"].shape == (4, m) and b["prev"].shape == (4, 3, L)
        for prev, cur, mask, sel in zip(b["prev"], b["ids"], b["answer_mask"], b["select"]):
            assert len(set(sel.tolist())) == m                                      # distinct slots
            t = next(t for t in range(3) if torch.equal(prev[t], cur))
            assert t >= 1 and mask.any()
            codes = selection_codes(model, prev).reshape(-1, 16)
            held = codes[sel]
            own = selection_codes(model, cur[None])[0][mask]                          # the asked facts' codes
            for code in own:                                                          # (= their statements')
                asked += 1
                found += bool((held - code).abs().amax(-1).min() < 1e-6)
            doc = next(d for d in docs if torch.equal(d.ids, prev))
            flat = doc.answer_mask.reshape(-1)
            assert all(flat[p] for p in sel.tolist() if p // L >= t)     # nothing of segment t or later but facts
    assert 0.6 * FACT_KEPT < found / asked <= 1.0
    loss, _ = STAGES["select"].loss(model, b)
    assert torch.isfinite(loss)


def test_select_answer_loss_is_the_answers_mean_ce(study_data, tmp_path):
    from ltm_gym.lm import selection_codes
    from ltm_gym.study.stages import STAGES

    cfg = tiny_study_config(select={"answer_loss": True, "fact_memories": 0.0})
    study = StudyDir(tmp_path / "s", cfg)
    b = STAGES["select"].batch(study, study_data.splits["train"], cfg.select, 0, torch.Generator().manual_seed(0))
    assert "answer_only" in b and b["answer_mask"].any()
    model = study.load_lm("none", untrained=True)
    with torch.no_grad():
        for r in model.readers:
            r.o.weight.normal_(0, 0.1)
    loss, stats = STAGES["select"].loss(model, b)
    codes = selection_codes(model, b["prev"])
    mem = codes.gather(1, b["select"][:, :, None].expand(-1, -1, codes.shape[-1]))
    want = model(b["ids"], mem)[1][b["answer_mask"]].mean()
    torch.testing.assert_close(loss, want, atol=1e-5, rtol=1e-5)
    assert stats["answer_ce"] == pytest.approx(float(want.detach()), abs=1e-5)
    loss.backward()
    assert model.readers[0].o.weight.grad.abs().sum() > 0


def test_stages_draw_the_train_split_without_fresh_documents(study_data, tmp_path, monkeypatch):
    from ltm_gym.study import stages

    cfg = tiny_study_config(lora={"fresh_documents": False, "train": {"steps": 2}})
    study = StudyDir(tmp_path / "s", cfg)
    run_stage("pretrain", study)
    drawn = []
    real = stages.pair_batch
    monkeypatch.setattr(stages, "pair_batch", lambda docs, *a, **k: drawn.append(docs) or real(docs, *a, **k))
    monkeypatch.setattr(stages, "fresh_synthetic_documents", lambda *a: pytest.fail("drew fresh documents"))
    run_stage("lora", study)
    splits = {k: {id(d) for d in v} for k, v in study.data.splits.items()}
    kinds = [next(k for k, ids in splits.items() if all(id(d) in ids for d in docs)) for docs in drawn]
    assert kinds == ["validation", "train", "train"]          # the evaluation batch, then one per step


def small_babi_tokenizer():
    """A byte-level BPE that keeps every bAbI story word one token (trained on generated stories)."""
    import random

    from ltm_gym.data import babi
    from ltm_gym.data.tokenizer import train_bpe

    rng = random.Random(0)
    texts = [" ".join(f.text for f in babi.generate_story(1 + i % 3, 8, rng).facts) for i in range(200)]
    questions = [" Where is Mary? Answer: kitchen. Where was the apple before the office? Answer: garden."] * 50
    return train_bpe(texts + questions + ["It was a fine day. She said so."], 500, babi.words())


def test_supporting_fact_memories_hold_the_facts_the_question_asks(tmp_path):
    """bAbI-in-books documents: the select reader's memories hold the supporting facts of the segment
    it predicts (from earlier segments), the rest random earlier positions."""

    from ltm_gym.data.babilong import BabiTaskConfig, babi_documents
    from ltm_gym.study.stages import supporting_fact_batch

    tok = small_babi_tokenizer()
    docs = babi_documents(BabiTaskConfig(name="t", qa=1, tokens=512, n_documents=12, n_eval=2), tok, 64)["train"]
    batch = supporting_fact_batch(docs, 16, 6, torch.Generator().manual_seed(0))
    assert batch["select"].shape == (16, 6) and batch["ids"].shape == (16, 64)
    held = 0
    for row in range(16):
        t = 7                                                               # the question's segment (the last)
        assert batch["answer_mask"][row].any()
        chosen = batch["select"][row].tolist()
        assert all(p < t * 64 for p in chosen)                              # earlier segments only
        doc = next(d for d in docs if torch.equal(d.ids, batch["prev"][row]))
        wanted = (doc.fact_due.reshape(-1)[: t * 64] == t).nonzero().flatten().tolist()
        held += all(p in chosen for p in wanted)
    assert held >= 8                                                       # each kept with probability 0.8
    ordered = supporting_fact_batch(docs, 16, 6, torch.Generator().manual_seed(0), held="all")
    stated = 0
    for row in range(16):
        chosen = ordered["select"][row].tolist()
        assert chosen == sorted(chosen, key=lambda p: (-(p // 64), p))      # latest segment first, as a selection keeps them
        doc = next(d for d in docs if torch.equal(d.ids, ordered["prev"][row]))
        facts = (doc.fact_due.reshape(-1)[: 7 * 64] != 0).nonzero().flatten().tolist()
        stated += sum(p in chosen for p in facts)
    assert stated >= 16 * 3                                                # every fact stated before, not only the asked
    current = supporting_fact_batch(docs, 16, 6, torch.Generator().manual_seed(0), held="current")
    for row in range(16):
        doc = next(d for d in docs if torch.equal(d.ids, current["prev"][row]))
        chosen = current["select"][row].tolist()
        actor = doc.fact_actor.reshape(-1)
        facts = [p for p in chosen if actor[p] > 0]
        assert len({int(actor[p]) for p in facts}) == len(facts)           # one fact per actor: none overwritten
        for p in facts:                                                    # each the latest about its actor
            assert not any(actor[q] == actor[p] for q in range(p + 1, 7 * 64))


def test_the_answer_hint_trains_the_last_blocks_attention_on_bAbI_windows():
    """Pre-training windows of bAbI-in-books documents carry each answer's source word, and the
    answer hint's loss moves the last block's attention towards it."""

    from ltm_gym.data.babilong import BabiTaskConfig, babi_documents
    from ltm_gym.lm import build_llmltm
    from ltm_gym.core import from_dict
    from ltm_gym.lm.setup import LMConfig
    from ltm_gym.study.stages import STAGES, window_batch

    tok = small_babi_tokenizer()
    docs = babi_documents(BabiTaskConfig(name="t", qa=1, tokens=256, questions=3, n_documents=8, n_eval=2), tok, 64)["train"]
    batch = window_batch(docs, 6, 4, torch.Generator().manual_seed(0))
    rows, answers = (batch["answer_source"] >= 0).nonzero(as_tuple=True)
    assert len(rows) >= 6                                             # several questions a document
    src = batch["answer_source"][rows, answers]
    assert (src < answers).all() and torch.equal(batch["ids"][rows, src], batch["ids"][rows, answers])
    subject = batch["subject_source"]
    assert (subject[rows, answers - 1] >= 0).all()                    # qa1: every question names its actor
    assert torch.equal(batch["ids"][rows, subject[rows, answers - 1]], batch["ids"][rows, subject[rows, src]])
    cfg = from_dict(LMConfig, {"tiny": {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 260}})
    model = build_llmltm(cfg, tok, lora=False, seed=0)
    batch["answer_hint"] = torch.ones(6)
    loss, stats = STAGES["pretrain"].loss(model, batch)
    assert set(stats) == {"subject_hint", "answer_hint"} and stats["answer_hint"] > 1.0   # spread over ~100 tokens
    loss.backward()
    last, first = model.lm.transformer.h[1].attn.c_attn.weight.grad, model.lm.transformer.h[0].attn.c_attn.weight.grad
    assert last.abs().sum() > 0 and first.abs().sum() > 0


def test_the_read_hint_points_the_last_reader_at_the_supporting_slot():
    """bAbI fact memories say which slot holds each answer's supporting fact, and the read hint's
    loss is -log of the last reader's attention there, which a few steps on it raise."""

    from ltm_gym.core import from_dict
    from ltm_gym.data.babilong import BabiTaskConfig, babi_documents
    from ltm_gym.lm import build_llmltm
    from ltm_gym.lm.setup import LMConfig
    from ltm_gym.study.stages import STAGES, support_slots, supporting_fact_batch

    tok = small_babi_tokenizer()
    docs = babi_documents(BabiTaskConfig(name="t", qa=1, tokens=512, n_documents=12, n_eval=2), tok, 64)["train"]
    batch = supporting_fact_batch(docs, 16, 6, torch.Generator().manual_seed(0), held="all")
    rows, cols = (batch["support_slot"] >= 0).nonzero(as_tuple=True)
    assert len(rows) >= 8 and (batch["answer_mask"][rows, cols]).all()     # at answers, where the fact is held
    held = batch["select"][rows, batch["support_slot"][rows, cols]]
    stating = batch["prev"].flatten(1)[rows, held]
    assert torch.equal(stating, batch["ids"][rows, cols])                   # the slot's word is the answer
    assert support_slots(torch.tensor([-1, 5, 9]), torch.tensor([9, 4])).tolist() == [-1, -1, 0]
    mixed = babi_documents(BabiTaskConfig(name="m", qa=0, tokens=512, n_documents=24, n_eval=2), tok, 64)["train"]
    qa1 = supporting_fact_batch(mixed, 16, 6, torch.Generator().manual_seed(1), held="all", supporting=1)
    for row in range(16):                                                  # qa1 questions only: one supporting fact
        doc = next(d for d in mixed if torch.equal(d.ids, qa1["prev"][row]))
        assert int((doc.fact_due == 7).sum()) == 1 and (qa1["support_slot"][row] >= 0).sum() <= 1
    cfg = from_dict(LMConfig, {"tiny": {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 260},
                               "memory": {"n_slots": 6, "slot_dim": 16, "n_memory_layers": 1, "code_context": 5,
                                          "query_code": True, "slot_order": True}})
    model = build_llmltm(cfg, tok, lora=False, seed=0)
    batch["read_hint"] = torch.ones(16)
    params = [p for n, p in model.named_parameters() if n.startswith(("readers", "memory_proj", "slot_embed"))]
    opt = torch.optim.Adam(params, lr=1e-2)
    first = None
    for _ in range(15):
        loss, stats = STAGES["select"].loss(model, batch)
        first = stats["read_hint"] if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert set(stats) == {"answer_ce", "read_hint"}
    assert first > 1.0 and stats["read_hint"] < first - 0.3                # from ~log 6 towards the slot


def test_the_select_stage_draws_a_bAbI_levels_documents_when_given_one():
    """``select.task``: the reader trains and validates on the level's documents (as long as the env's,
    with the questions asked), in the study's tokens; without it, on the study corpus."""
    from types import SimpleNamespace

    from ltm_gym.core import ConfigError, load_config
    from ltm_gym.study import StudyConfig
    from ltm_gym.study.stages import STAGES

    corpus = object()
    plain = SimpleNamespace(config=StudyConfig(), data=SimpleNamespace(splits=corpus))
    assert STAGES["select"].splits(plain) is corpus
    tok = small_babi_tokenizer()
    counts = {}
    for questions in (0, 4):
        cfg = load_config(StudyConfig, {"select": {"task": "babi-qa1-1k", "task_questions": questions,
                                                   "fresh_documents": False}})
        splits = STAGES["select"].splits(SimpleNamespace(config=cfg, tokenizer=tok, data=None))
        docs = splits["validation"]
        L = cfg.corpus.segment_len
        assert len(docs) == 100 and docs[0].ids.shape == (1024 // L, L)
        counts[questions] = [int(d.answer_mask.any(1).sum()) for d in docs[:10]]
    assert counts[0] == [1] * 10 and min(counts[4]) >= 2            # the protocol's question, or answers along the way
    with pytest.raises(ConfigError, match="babi-qa9-1k"):
        load_config(StudyConfig, {"select": {"task": "babi-qa9-1k"}})
    with pytest.raises(ConfigError, match="task_questions"):
        load_config(StudyConfig, {"select": {"task_questions": -1}})
