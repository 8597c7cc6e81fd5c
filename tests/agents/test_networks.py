import numpy as np
import pytest
import torch
from gymnasium import spaces

from ltm_gym.agents.networks import ObservationEncoder, SelectionScorer, WriterConfig, code_matches


def obs_space(L: int = 12, vocab: int = 50) -> spaces.Dict:
    return spaces.Dict({"tokens": spaces.Box(0, vocab - 1, (L,), np.int64),
                        "memory": spaces.Box(-1, 1, (4, 8), np.float32)})


@pytest.mark.parametrize("window", [3, 4])
def test_local_window_mixes_exactly_the_tokens_before(window):
    torch.manual_seed(0)
    enc = ObservationEncoder(obs_space(), WriterConfig(d_model=16, n_head=2, local_window=window))
    ids = torch.randint(0, 50, (1, 12))
    other = ids.clone()
    other[0, 5] = (ids[0, 5] + 1) % 50
    changed = (enc.token_features(ids) - enc.token_features(other)).abs().sum(-1)[0] > 0
    assert changed.tolist() == [5 <= p < 5 + window for p in range(12)]    # causal, `window` wide


def test_no_local_window_is_plain_embedding():
    enc = ObservationEncoder(obs_space(), WriterConfig(d_model=16, n_head=2))
    ids = torch.randint(0, 50, (2, 12))
    assert enc.local is None and torch.equal(enc.token_features(ids), enc.embed(ids))
    with pytest.raises(ValueError, match="local_window=-1"):
        WriterConfig(local_window=-1).validate()


def test_code_matches_find_the_slot_a_segment_asks_again():
    torch.manual_seed(0)
    codes = torch.randn(2, 12, 8)
    memory = torch.zeros(2, 4, 8)
    memory[0, 1] = codes[0, 5]                       # slot 1 holds position 5's code
    memory[0, 2] = 0.5 * codes[0, 5] + 0.5 * codes[0, 6]
    memory[1, 0] = torch.randn(8)
    slots, positions = code_matches(memory, codes)
    assert slots.shape == (2, 4, 2) and positions.shape == (2, 12, 2)
    assert slots[0, :, 1].tolist() == [0, 1, 0, 0] and slots[1, :, 1].tolist() == [0, 0, 0, 0]
    assert positions[0, :, 1].nonzero().flatten().tolist() == [5]
    assert slots[0, 1, 0] == pytest.approx(1.0, abs=1e-6)
    assert 0.5 < slots[0, 2, 0] < 1 - 1e-3              # similar, not exact
    assert slots[0, 0].tolist() == [0, 0]               # an empty slot matches nothing


def test_selection_scorer_starts_as_without_codes_and_can_learn_from_them():
    """The code matches and the slots' order start at zero and draw no random numbers: the same
    seed gives the same policy as without them; gradients reach them."""
    space = spaces.Dict({**obs_space().spaces, "codes": spaces.Box(-1, 1, (12, 8), np.float32)})
    torch.manual_seed(0)
    with_codes = SelectionScorer(space, WriterConfig(d_model=16, n_head=2))
    torch.manual_seed(0)
    without = SelectionScorer(obs_space(), WriterConfig(d_model=16, n_head=2))
    obs = {"tokens": torch.randint(0, 50, (3, 12)), "memory": torch.rand(3, 4, 8), "codes": torch.rand(3, 12, 8)}
    obs["memory"][:, 2] = obs["codes"][:, 7]
    first = with_codes(obs)
    assert torch.equal(first, without({k: v for k, v in obs.items() if k != "codes"}))
    first[:, 12 + 2].sum().backward()                  # the kept slot's logit
    assert with_codes.encoder.slot_match.weight.grad.abs().sum() > 0
    assert with_codes.encoder.slot_order.grad[2].abs().sum() > 0

def test_selection_scorer_never_keeps_an_empty_slot():
    """A slot of zeros (after a reset) gets EMPTY_SLOT_LOGIT however strong the keep prior: a policy
    that prefers keeping still writes from an empty memory; written slots get the prior."""
    from ltm_gym.agents.distributions import categorical_entropy, gumbel_top_k, plackett_luce_log_prob
    from ltm_gym.agents.networks import EMPTY_SLOT_LOGIT

    torch.manual_seed(0)
    scorer = SelectionScorer(obs_space(), WriterConfig(d_model=16, n_head=2))
    with torch.no_grad():
        scorer.keep_prior.fill_(5.0)
    obs = {"tokens": torch.randint(0, 50, (2, 12)), "memory": torch.zeros(2, 4, 8)}
    obs["memory"][1, 1] = torch.rand(8) + 0.1
    logits = scorer(obs)
    assert (logits[0, 12:] < EMPTY_SLOT_LOGIT / 2).all() and (logits[0, :12].abs() < 10).all()
    assert logits[1, 12 + 1] > logits[1, :12].max() and (logits[1, [12, 14, 15]] < EMPTY_SLOT_LOGIT / 2).all()
    chosen = gumbel_top_k(logits, 4, torch.Generator().manual_seed(0))
    assert (chosen[0] < 12).all() and 12 + 1 in chosen[1].tolist() and (chosen[1][chosen[1] >= 12] == 13).all()
    assert torch.isfinite(plackett_luce_log_prob(logits, chosen)).all()
    assert torch.isfinite(categorical_entropy(logits)).all()


def spelled(ids: torch.Tensor, vocab: int, width: int = 8) -> torch.Tensor:
    """Vectors (..., width) whose last len(window) + 1 entries spell ``ids`` (..., w) as a study's codes do."""
    from ltm_gym.lm.memory import window_code
    out = torch.rand(*ids.shape[:-1], width) * 0.1
    out[..., width - ids.shape[-1] - 1:] = window_code(ids, vocab)
    return out


def test_window_scoring_scores_a_kept_window_as_the_same_window_at_a_position():
    """With ``window_tokens`` every candidate is scored from the window it spells: a slot that keeps
    the window of position 4 scores what position 4 scores, plus the keep prior and the (zero at
    first) terms of a kept slot; a different window scores differently."""
    vocab, L, m = 50, 12, 4
    space = spaces.Dict({**obs_space(L, vocab).spaces, "codes": spaces.Box(-1, 1, (L, 8), np.float32)})
    torch.manual_seed(0)
    scorer = SelectionScorer(space, WriterConfig(d_model=16, n_head=2, window_tokens=3))
    assert not hasattr(scorer.encoder, "encoder")                # no segment encoder to train
    with torch.no_grad():
        scorer.keep_prior.fill_(0.7)
        scorer.token_prior.weight.normal_()
    windows = torch.randint(0, vocab, (2, L, 3))
    obs = {"tokens": windows[..., -1], "codes": spelled(windows, vocab), "memory": torch.zeros(2, m, 8)}
    obs["memory"][:, 1] = spelled(windows[:, 4], vocab) * 0.5      # kept at another scale: the same window
    obs["memory"][:, 2] = spelled((windows[:, 4] + 1) % vocab, vocab)
    logits = scorer(obs)
    assert logits.shape == (2, L + m)
    torch.testing.assert_close(logits[:, L + 1], logits[:, 4] + 0.7)
    assert (logits[:, L + 2] - 0.7 - logits[:, 4]).abs().min() > 1e-4
    assert (logits[:, [L, L + 3]] < -1e3).all()                     # empty slots are never kept
    logits[:, : L + 3].sum().backward()
    assert scorer.encoder.window_in[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="window_tokens=-1"):
        WriterConfig(window_tokens=-1).validate()
    with pytest.raises(ValueError, match="window_tokens=3"):
        SelectionScorer(obs_space(L, vocab), WriterConfig(d_model=16, n_head=2, window_tokens=3))
