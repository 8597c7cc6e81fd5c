import torch

from ltm_gym.baselines.looped.tasks import Stage, sample_regression


def test_statistics_and_zeroed_coordinates():
    g = torch.Generator().manual_seed(0)
    b = sample_regression(4000, 11, 20, 5, g)
    assert b["xs"].shape == (4000, 11, 20) and b["ys"].shape == (4000, 11)
    assert (b["xs"][..., 5:] == 0).all() and (b["w"][:, 5:] == 0).all()
    assert abs(b["ys"].var().item() - 5) < 0.25          # Var y = d_cur
    assert abs(b["xs"][..., :5].std().item() - 1) < 0.02
    assert torch.allclose(b["ys"], torch.einsum("bnd,bd->bn", b["xs"], b["w"]))


def test_seeded_and_noisy():
    a = sample_regression(8, 5, 4, 4, torch.Generator().manual_seed(3))
    b = sample_regression(8, 5, 4, 4, torch.Generator().manual_seed(3))
    assert torch.equal(a["xs"], b["xs"]) and torch.equal(a["ys"], b["ys"])
    n = sample_regression(4000, 5, 4, 4, torch.Generator().manual_seed(3), noise_std=0.1)
    resid = n["ys"] - torch.einsum("bnd,bd->bn", n["xs"], n["w"])
    assert abs(resid.std().item() - 0.1) < 0.005


def test_curriculum_stage():
    s = Stage(start=15, end=20, inc=2, interval=500)
    assert [s.at(t) for t in (0, 499, 500, 1000, 1500, 10**6)] == [15, 15, 17, 19, 20, 20]
