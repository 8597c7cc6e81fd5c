import pytest
import torch

from baselines.looped.models import ModelConfig, RegressionTransformer, regression_loss
from tests.fixtures import load_script

bench = load_script("bench_looped")


def copy_into_reference(ours: RegressionTransformer, ref: torch.nn.Module) -> None:
    """Give the rebuilt reference model the package model's weights, layer by layer."""
    blocks = ours.units[0].blocks
    with torch.no_grad():
        for mine, theirs in [(ours.read_in, ref.read_in), (ours.read_out, ref.read_out), (ours.units[0].ln_f, ref.ln_f)]:
            theirs.load_state_dict(mine.state_dict())
        ref.wpe.weight[: ours.wpe.weight.shape[0]] = ours.wpe.weight
        for b, r in zip(blocks, ref.blocks):
            pairs = [(b.ln_1, r.ln_1), (b.mix.c_attn, r.c_attn), (b.mix.c_proj, r.attn_proj), (b.ln_2, r.ln_2),
                     (b.mlp.c_fc, r.c_fc), (b.mlp.c_proj, r.mlp_proj)]
            for mine, theirs in pairs:
                theirs.load_state_dict(mine.state_dict())


@pytest.mark.parametrize("kind", ["looped", "gpt2"])
def test_rebuilt_reference_computes_what_the_package_computes(kind):
    """Same weights, same prompts: the same predictions and gradients (the package drops the last,
    unread token and fuses / recomputes inside the block; the values must not move)."""
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, n_dims=20, n_embd=bench.N_EMBD, n_head=bench.N_HEAD,
                      n_layer=12 if kind == "gpt2" else 1)
    ours, ref = RegressionTransformer(cfg), bench.reference_model(kind)
    copy_into_reference(ours, ref)
    xs, ys = torch.randn(2, 6, 20), torch.randn(2, 6)
    p_ours = ours(xs, ys, n_loops=bench.N_LOOPS, n_grad=bench.N_GRAD)
    p_ref = ref(xs, ys)
    assert p_ours.shape == p_ref.shape == ((bench.N_GRAD if kind == "looped" else 1), 2, 6)
    assert torch.allclose(p_ours, p_ref, atol=1e-5)
    regression_loss(p_ours, ys).backward()
    regression_loss(p_ref, ys).backward()
    g_ours, g_ref = ours.units[0].blocks[0].mlp.c_fc.weight.grad, ref.blocks[0].c_fc.weight.grad
    assert torch.allclose(g_ours, g_ref, atol=1e-5 * g_ref.abs().max().item())
