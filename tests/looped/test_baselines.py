import torch

from ltm_gym.baselines.looped import evaluate as ev
from ltm_gym.baselines.looped.tasks import sample_regression


def prompts(d=5, n=11, count=3000):
    return sample_regression(count, n, d, d, torch.Generator().manual_seed(1))


def test_least_squares_error_is_d_minus_k_over_d():
    d = 5
    b = prompts(d)
    err = ev.normalized_error(ev.least_squares(b["xs"], b["ys"]), b["ys"], d).mean(0)
    for k in range(d):
        assert abs(err[k].item() - (d - k) / d) < 0.08, (k, err[k])
    assert err[d:].max() < 1e-6


def test_averaging_and_knn():
    d = 5
    b = prompts(d)
    avg = ev.normalized_error(ev.averaging(b["xs"], b["ys"]), b["ys"], d).mean(0)
    knn = ev.normalized_error(ev.knn(b["xs"], b["ys"]), b["ys"], d).mean(0)
    assert abs(avg[0] - 1) < 0.08 and abs(knn[0] - 1) < 0.08       # both predict 0 first
    assert avg[-1] < 0.85 * avg[1]                                   # averaging improves slowly
    # with one neighbour the prediction is an unrelated label: error ~ 2 (twice the variance)
    assert abs(knn[1] - 2) < 0.2
    assert knn[-1] > avg[-1]                                         # 3-NN is the weakest here


def test_bootstrap_band_contains_mean():
    errs = torch.rand(200, 4)
    mean, lo, hi = ev.bootstrap_band(errs, n_boot=200)
    assert ((lo <= mean) & (mean <= hi)).all()
    assert torch.allclose(mean, errs.mean(0))
