import pytest
import torch

from ltm_gym.lm import build_tiny_gpt2
from ltm_gym.lm.induction import captured_attention, induction_hint_loss, induction_targets
from ltm_gym.lm.loading import TinyGPT2


def test_targets_by_hand():
    ids = torch.tensor([[7, 1, 2, 1, 2]])
    prev, ind = induction_targets(ids)
    assert prev[0].nonzero().tolist() == [[1, 0], [2, 1], [3, 2], [4, 3]]
    # position 3 (token 1) saw token 1 at 1 -> attend to 2; position 4 (token 2) saw it at 2 -> attend to 3
    assert ind[0].nonzero().tolist() == [[3, 2], [4, 3]]


def test_loss_is_zero_on_target_attention_and_positive_elsewhere():
    ids = torch.tensor([[7, 1, 2, 1, 2, 1]])
    prev, ind = induction_targets(ids)

    def probs(target):
        p = torch.eye(6)[None, None].repeat(1, 2, 1, 1)      # attend to self where there is no target
        rows = target[0].any(-1)
        p[0, 0, rows] = target[0, rows].float() / target[0, rows].sum(-1, keepdim=True)
        return p

    assert float(induction_hint_loss([probs(prev), probs(ind)], ids)) == pytest.approx(0.0, abs=1e-6)
    uniform = torch.ones(6, 6).tril()
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None, None].repeat(1, 2, 1, 1)
    assert float(induction_hint_loss([uniform, uniform], ids)) > 0.5


def test_capture_gives_probabilities_and_restores_the_fast_attention():
    lm = build_tiny_gpt2(TinyGPT2(n_layer=2, n_embd=16, n_head=2, n_positions=16), 20, 0)
    before = lm.config._attn_implementation
    ids = torch.randint(20, (3, 9))
    with captured_attention(lm, (0, 1)) as att:
        lm(ids)
    assert [a.shape for a in att] == [(3, 2, 9, 9)] * 2
    torch.testing.assert_close(att[0].sum(-1), torch.ones(3, 2, 9))
    assert torch.all(att[1].triu(1) == 0)                      # causal
    assert lm.config._attn_implementation == before
    with pytest.raises(ValueError, match="blocks"):
        with captured_attention(lm, (0, 5)):
            pass


def test_hint_gradient_reaches_only_through_attention():
    lm = build_tiny_gpt2(TinyGPT2(n_layer=2, n_embd=16, n_head=2, n_positions=16), 20, 0)
    ids = torch.tensor([[0, 3, 4, 5, 3, 4, 5, 3]])
    with captured_attention(lm, (0, 1)) as att:
        lm(ids)
    loss = induction_hint_loss(att, ids)
    loss.backward()
    assert lm.transformer.h[0].attn.c_attn.weight.grad.abs().sum() > 0
    assert lm.lm_head.weight.grad is None                      # the output layer plays no part


def test_attention_hints_by_hand():
    from ltm_gym.lm.induction import answer_targets, attention_hint_loss

    source = torch.full((2, 5), -1)
    source[0, 4] = 1                                           # answer ids[4], stated at ids[1]
    targets = answer_targets(source)
    assert targets[0].tolist() == [-1, -1, -1, 1, -1] and (targets[1] == -1).all()   # read from ids[3]
    probs = torch.ones(6, 6).tril()
    probs = (probs / probs.sum(-1, keepdim=True))[None, None].repeat(2, 2, 1, 1)   # over [BOS, ids]
    assert float(attention_hint_loss(probs, targets)) == pytest.approx(torch.tensor(5.0).log().item())
    probs[0, 0, 4] = torch.nn.functional.one_hot(torch.tensor(2), 6).float()        # the row that reads ids[3]
    assert float(attention_hint_loss(probs, targets)) == pytest.approx(0.0, abs=1e-6)
    assert float(attention_hint_loss(probs, torch.full((2, 5), -1))) == 0.0          # no target, no hint


def test_answer_hint_only_where_the_question_names_its_actor():
    from ltm_gym.lm.induction import answer_targets

    source = torch.full((2, 6), -1)
    source[0, 5], source[1, 5] = 1, 2                          # both answers ids[5], read from ids[4]
    subject = torch.full((2, 6), -1)
    subject[0, 4] = 0                                          # only row 0's question names an actor
    assert answer_targets(source)[:, 4].tolist() == [1, 2]
    assert answer_targets(source, subject)[:, 4].tolist() == [1, -1]


def test_tiny_init_std_sets_the_initial_weight_scale_and_is_validated():
    from ltm_gym.core import ConfigError

    narrow = build_tiny_gpt2(TinyGPT2(n_layer=1, n_embd=64, n_head=2, n_positions=16), 50, 0)
    wide = build_tiny_gpt2(TinyGPT2(n_layer=1, n_embd=64, n_head=2, n_positions=16, init_std=0.05), 50, 0)
    std = lambda lm: float(lm.transformer.h[0].attn.c_attn.weight.detach().std())  # noqa: E731
    assert std(narrow) == pytest.approx(0.02, rel=0.05) and std(wide) == pytest.approx(0.05, rel=0.05)
    with pytest.raises(ConfigError, match="tiny.init_std"):
        TinyGPT2(init_std=0.0).validate()
