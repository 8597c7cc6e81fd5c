import itertools
import math

import pytest
import torch

from ltm_gym.agents.distributions import (categorical_entropy, gumbel_top_k, leave_one_out, plackett_luce_log_prob,
                                          selection_scores, spaced_top_k)


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


def spaced_orders(n_candidates: int, k: int, n_tokens: int, spacing: int) -> list[tuple[int, ...]]:
    """Every ordered choice of k candidates whose chosen tokens lie more than ``spacing`` apart."""
    return [o for o in itertools.permutations(range(n_candidates), k)
            if all(abs(a - b) > spacing for a in o for b in o if a != b and a < n_tokens and b < n_tokens)]


def test_spaced_sampling_is_the_sequential_choice_that_rules_out_a_tokens_neighbours():
    """6 candidates, the first 4 tokens and 2 slots, spacing 1: no two chosen tokens are neighbours;
    the Gumbel-greedy sample's frequencies match exp(log P) of the sequential rule, whose
    probabilities over the allowed orders sum to 1."""
    logits = torch.tensor([1.0, 0.8, -0.3, 0.5, 0.2, -1.0])
    allowed = spaced_orders(6, 3, 4, 1)
    probs = {o: math.exp(float(plackett_luce_log_prob(logits, torch.tensor(o), n_tokens=4, spacing=1))) for o in allowed}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    n = 60_000
    samples = gumbel_top_k(logits.expand(n, 6), 3, generator=torch.Generator().manual_seed(1), n_tokens=4, spacing=1)
    drawn = {tuple(int(x) for x in row) for row in samples.unique(dim=0)}
    assert drawn <= set(allowed)                                     # never two neighbouring tokens
    for o in allowed:
        freq = float((samples == torch.tensor(o)).all(-1).float().mean())
        assert freq == pytest.approx(probs[o], abs=0.01), (o, freq, probs[o])
    # without the rule the same logits put mass on neighbours (0 then 1)
    assert math.exp(float(plackett_luce_log_prob(logits, torch.tensor([0, 1, 3])))) > 0.04


def test_spaced_top_k_is_greedy_and_falls_back_on_the_slots():
    scores = torch.tensor([[5.0, 4.9, 4.8, 1.0, 0.0, -2.0, -3.0, -4.0]])      # 5 tokens, 3 slots
    assert spaced_top_k(scores, 3).tolist() == [[0, 1, 2]]
    assert spaced_top_k(scores, 3, n_tokens=5, spacing=1).tolist() == [[0, 2, 4]]
    assert spaced_top_k(scores, 3, n_tokens=5, spacing=4).tolist() == [[0, 5, 6]]  # one token, then the slots


def test_selection_scores_leave_one_out_entropy():
    s = selection_scores(torch.tensor([[3, 0]]), 5)
    assert s.tolist() == [[1.0, -1.0, -1.0, 1.0, -1.0]]
    r = torch.tensor([[1.0], [2.0], [6.0]])
    assert leave_one_out(r).flatten().tolist() == [1 - 4.0, 2 - 3.5, 6 - 1.5]
    with pytest.raises(ValueError, match=">= 2"):
        leave_one_out(r[:1])
    assert float(categorical_entropy(torch.zeros(8))) == pytest.approx(math.log(8))
