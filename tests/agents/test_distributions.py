import itertools
import math

import pytest
import torch

from ltm_gym.agents.distributions import (categorical_entropy, gumbel_top_k, leave_one_out, plackett_luce_log_prob,
                                  selection_scores)


def test_gumbel_top_k_samples_plackett_luce():
    """The frequency of each ordered pair matches exp(log P) of Plackett-Luce."""
    logits = torch.tensor([1.0, 0.0, -0.5, 0.7])
    n = 40_000
    samples = gumbel_top_k(logits.expand(n, 4), 2, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (n, 2) and (samples[:, 0] != samples[:, 1]).all()
    for a, b in itertools.permutations(range(4), 2):
        freq = float(((samples[:, 0] == a) & (samples[:, 1] == b)).float().mean())
        p = math.exp(float(plackett_luce_log_prob(logits, torch.tensor([a, b]))))
        assert freq == pytest.approx(p, abs=0.01), (a, b, freq, p)


def test_plackett_luce_probabilities_sum_to_one_and_uniform_case():
    logits = torch.randn(5)
    total = sum(math.exp(float(plackett_luce_log_prob(logits, torch.tensor(o)))) for o in itertools.permutations(range(5), 3))
    assert total == pytest.approx(1.0, abs=1e-5)
    assert float(plackett_luce_log_prob(torch.zeros(4), torch.tensor([2, 0]))) == pytest.approx(-math.log(4 * 3))


def test_selection_scores_leave_one_out_entropy():
    s = selection_scores(torch.tensor([[3, 0]]), 5)
    assert s.tolist() == [[1.0, -1.0, -1.0, 1.0, -1.0]]
    r = torch.tensor([[1.0], [2.0], [6.0]])
    assert leave_one_out(r).flatten().tolist() == [1 - 4.0, 2 - 3.5, 6 - 1.5]
    with pytest.raises(ValueError, match=">= 2"):
        leave_one_out(r[:1])
    assert float(categorical_entropy(torch.zeros(8))) == pytest.approx(math.log(8))
