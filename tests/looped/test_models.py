import pytest
import torch

from ltm_gym.baselines.looped.models import ModelConfig, RegressionTransformer, count_parameters, regression_loss
from ltm_gym.core import ConfigError, from_dict


def model(**kw):
    torch.manual_seed(0)
    base = dict(n_dims=4, n_positions=10, n_embd=32, n_head=4)
    return RegressionTransformer(from_dict(ModelConfig, {**base, **kw}))


def data(n=9, b=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, n, 4, generator=g), torch.randn(b, n, generator=g)


def test_paper_sizes():
    assert 0.8e6 < count_parameters(RegressionTransformer(ModelConfig(kind="looped"))) < 0.9e6
    assert 9.3e6 < count_parameters(RegressionTransformer(ModelConfig(kind="gpt2", n_layer=12))) < 9.8e6


def test_init_is_the_public_codes():
    """GPT-2's N(0, 0.02) inside the backbone; read-in and read-out keep PyTorch's default
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), whose std is 1/sqrt(3 fan_in)."""
    m = RegressionTransformer(ModelConfig(kind="looped", n_dims=20, n_embd=256))
    assert abs(m.units[0].blocks[0].mix.c_attn.weight.std().item() - 0.02) < 0.001
    assert abs(m.wpe.weight.std().item() - 0.02) < 0.001
    for layer, fan_in in ((m.read_in, 20), (m.read_out, 256)):
        bound = fan_in ** -0.5
        assert layer.weight.abs().max().item() <= bound
        assert abs(layer.weight.std().item() - bound / 3 ** 0.5) < 0.25 * bound / 3 ** 0.5


VARIANTS = [
    dict(kind="gpt2", n_layer=2), dict(kind="tied", n_layer=3), dict(kind="looped"),
    dict(kind="looped", injection="ema", ema_alpha=0.7), dict(kind="nlast", n_last=4), dict(kind="ab"),
    dict(kind="looped", mixer="ssm"), dict(kind="gpt2", mixer="ssm"), dict(kind="looped", checkpoint_loops=2),
]


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_variants_train_with_finite_loss(kw, loss):
    m = model(**kw)
    xs, ys = data()
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    losses = []
    for _ in range(3):
        preds = m(xs, ys, n_loops=4, n_grad=2)
        assert preds.shape == ((2 if m.cfg.looped else 1), 3, 9)
        out = regression_loss(preds, ys, loss)
        out.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] != losses[0]


@pytest.mark.parametrize("kind", ["gpt2", "looped", "nlast", "ab"])
@pytest.mark.parametrize("mixer", ["attention", "ssm"])
def test_causal_prediction_ignores_later_points(kind, mixer):
    m = model(kind=kind, mixer=mixer, n_last=30).eval()
    xs, ys = data(9)
    with torch.no_grad():
        full = m(xs, ys, n_loops=3)
        short = m(xs[:, :5], ys[:, :5], n_loops=3)
    assert torch.allclose(full[..., :5], short, atol=1e-5)


def test_truncation_no_gradient_in_first_loops():
    m = model(kind="looped")
    seen = []
    m.units[0].register_forward_hook(lambda mod, inp, out: seen.append(out.requires_grad))
    xs, ys = data()
    preds = m(xs, ys, n_loops=7, n_grad=3)
    assert seen == [False] * 4 + [True] * 3
    assert preds.shape[0] == 3


def test_checkpointed_loops_give_same_gradients():
    xs, ys = data()
    grads = []
    for ck in (0, 1, 3):                                    # none, some, all of the 3 tracked loops
        m = model(kind="looped", checkpoint_loops=ck)
        regression_loss(m(xs, ys, n_loops=5, n_grad=3), ys).backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and torch.allclose(grads[0], grads[2], atol=1e-6)


def test_ssm_stays_finite_after_500_loops():
    m = model(kind="looped", mixer="ssm").eval()
    xs, ys = data()
    with torch.no_grad():
        preds = m(xs * 10, ys * 10, n_loops=500, n_grad=1)
    assert torch.isfinite(preds).all()


def test_bad_config_is_named():
    with pytest.raises(ConfigError, match="n_embd"):
        from_dict(ModelConfig, {"n_embd": 30, "n_head": 4})
    with pytest.raises(ConfigError, match="kind"):
        from_dict(ModelConfig, {"kind": "lopped"})
    with pytest.raises(ValueError, match="n_loops=0"):
        model()(*data(), n_loops=0)
