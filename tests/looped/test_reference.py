import pytest
import torch

from ltm_gym.baselines.looped.models import ModelConfig, RegressionTransformer, regression_loss
from ltm_gym.core import autocast
from ltm_gym.baselines.looped import reference as bench


def module_pairs(ours: RegressionTransformer, ref: torch.nn.Module) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
    """The package model's modules and the rebuilt reference's counterparts (positions aside)."""
    pairs = [(ours.read_in, ref.read_in), (ours.read_out, ref.read_out), (ours.units[0].ln_f, ref.ln_f)]
    for b, r in zip(ours.units[0].blocks, ref.blocks):
        pairs += [(b.ln_1, r.ln_1), (b.mix.c_attn, r.c_attn), (b.mix.c_proj, r.attn_proj), (b.ln_2, r.ln_2),
                  (b.mlp.c_fc, r.c_fc), (b.mlp.c_proj, r.mlp_proj)]
    return pairs


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("kind", ["looped", "gpt2"])
def test_rebuilt_reference_computes_what_the_package_computes(kind, precision):
    """Same weights, same prompts: the same predictions and gradients. The package drops the last,
    unread token and fuses / recomputes inside the block (LayerNorm + linear, GELU, the mask in
    baddbmm); none of it may move a value beyond rounding."""
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, n_dims=20, n_embd=bench.N_EMBD, n_head=bench.N_HEAD,
                      n_layer=12 if kind == "gpt2" else 1)
    ours, ref = RegressionTransformer(cfg), bench.reference_model(kind)
    pairs = module_pairs(ours, ref)
    with torch.no_grad():
        for mine, theirs in pairs:
            theirs.load_state_dict(mine.state_dict())
        ref.wpe.weight[: ours.wpe.weight.shape[0]] = ours.wpe.weight
    xs, ys = torch.randn(2, 6, 20), torch.randn(2, 6)
    with autocast(torch.device("cpu"), precision):
        p_ours = ours(xs, ys, n_loops=bench.N_LOOPS, n_grad=bench.N_GRAD).float()
        p_ref = ref(xs, ys).float()
    assert p_ours.shape == p_ref.shape == ((bench.N_GRAD if kind == "looped" else 1), 2, 6)
    # bf16: the reference also rounds its elementwise GELU to bf16 at every op; measured up to 3 %
    # of a gradient's largest entry through GPT-2's 12 blocks, 1.3 % through the looped one
    tol = 1e-5 if precision == "fp32" else 5e-2
    assert torch.allclose(p_ours, p_ref, atol=tol * p_ref.abs().max().item())
    regression_loss(p_ours, ys).backward()
    regression_loss(p_ref, ys).backward()
    for mine, theirs in pairs:
        for a, b in zip(mine.parameters(), theirs.parameters()):
            assert torch.allclose(a.grad, b.grad, atol=tol * b.grad.abs().max().item()), (mine, theirs)
