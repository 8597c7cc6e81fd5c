import math

import pytest
import torch

from ltm_gym.metrics import SegmentMetrics, bootstrap_ci, mean_std, perplexity, prefix_losses, topk_accuracy


def test_prefix_losses_by_hand():
    losses = torch.tensor([[1.0, 3.0, 2.0, 6.0]])
    assert prefix_losses(losses, torch.tensor([1, 2, 4])).tolist() == [[1.0, 2.0, 3.0]]
    per_row = prefix_losses(torch.tensor([[1.0, 3.0], [4.0, 0.0]]), torch.tensor([[2], [1]]))
    assert per_row.flatten().tolist() == [2.0, 4.0]
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        prefix_losses(losses, torch.tensor([0]))


def test_topk_and_perplexity():
    logits = torch.tensor([[[0.0, 3.0, 2.0, 1.0], [5.0, 1.0, 2.0, 3.0]]])
    targets = torch.tensor([[3, 0]])        # ranks 2 and 0
    assert topk_accuracy(logits, targets, ks=(1, 2, 3)) == {1: 0.5, 2: 0.5, 3: 1.0}
    assert perplexity(math.log(18.724)) == pytest.approx(18.724)


def test_segment_metrics_summary():
    m = SegmentMetrics(ks=(1, 2))
    logits = torch.tensor([[[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]])
    targets = torch.tensor([[0, 1]])         # ranks 0 and 1
    losses = torch.nn.functional.cross_entropy(logits[0], targets[0], reduction="none")[None]
    m.add(logits, targets, losses, answer_mask=torch.tensor([[False, True]]), doc_ids=[0])
    s = m.summary()
    assert s["ce"] == pytest.approx(float(losses.mean()))
    assert s["top1"] == 0.5 and s["top2"] == 1.0
    assert s["recall_acc"] == 0.0 and s["answer_ce"] == pytest.approx(float(losses[0, 1]))
    assert m.position_curve() == pytest.approx(losses[0].tolist())
    assert m.doc_answers == {0: [pytest.approx(float(losses[0, 1])), 1.0]}
    stepped = SegmentMetrics(ks=(1, 2))                 # the same segment as an env's info reports it
    stepped.add_info({"token_losses": losses[0].tolist(), "top1": 0.5, "top2": 1.0, "answer_ce": float(losses[0, 1]),
                      "recall_acc": 0.0, "answer_tokens": 1}, doc_id=0)
    assert stepped.summary() == pytest.approx(s) and stepped.doc_answers == m.doc_answers


def test_mean_std_and_bootstrap():
    assert mean_std([2.925, 2.929, 2.937]) == pytest.approx((2.930333, 0.006110), abs=1e-5)
    assert mean_std([1.0]) == (1.0, 0.0)
    lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0] * 10, n_boot=500)
    assert lo < 2.5 < hi and hi - lo < 1.0
