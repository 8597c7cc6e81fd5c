"""K candidate memories sharing the memory-free trunk: the same losses as K plain forwards, on the
GPT-2 and Llama families, with and without LoRA, at chosen positions, and under bf16 autocast."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from ltm_gym.lm import LLMLTM, LoraSettings, MemorySettings
from ltm_gym.lm import model as model_module
from ltm_gym.lm.trunk import final_norm

V, B, L, K = 96, 3, 10, 4


def ltm(family: str, lora: bool = True, layers: int = 4, **memory) -> LLMLTM:
    torch.manual_seed(0)
    if family == "gpt2":
        lm = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=64, n_embd=32, n_layer=layers, n_head=4, bos_token_id=0))
        targets = ["c_attn"]
    else:
        lm = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                          bos_token_id=0))
        targets = ["q_proj", "v_proj"]
    model = LLMLTM(lm, MemorySettings(n_slots=5, slot_dim=8, **memory), LoraSettings(enabled=lora, target_modules=targets),
                   bos_token_id=0)
    with torch.no_grad():
        for p in model.parameters():               # readers and LoRA away from their zero start
            if p.requires_grad:
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, V, (B, L), generator=g), torch.randn(K, B, 5, 8, generator=g)


def plain(model: LLMLTM, ids: torch.Tensor, memories: torch.Tensor) -> torch.Tensor:
    return model(ids.repeat(K, 1), memories.reshape(K * B, 5, 8))[1].view(K, B, L)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("lora", [True, False])
def test_shared_trunk_gives_the_plain_forwards_losses(family, lora):
    model = ltm(family, lora)
    ids, memories = inputs()
    with torch.no_grad():
        want = plain(model, ids, memories)
        got = model.candidate_losses(ids, memories)
    assert model.shares_trunk
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(want[0], want[1], atol=1e-3)         # the memories matter: not a trivially equal pair


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_output_layer_only_where_asked_in_chunks(family, monkeypatch):
    model = ltm(family, n_memory_layers=1)
    ids, memories = inputs(2)
    positions = torch.zeros(B, L, dtype=torch.bool)
    positions[0, [2, 7]] = positions[2, 9] = True
    monkeypatch.setattr(model_module, "LOGIT_BYTES", 4 * V * 2)    # two rows of logits at a time
    with torch.no_grad():
        want = plain(model, ids, memories)
        got = model.candidate_losses(ids, memories, positions)
    mask = positions.expand(K, B, L)
    torch.testing.assert_close(got[mask], want[mask], atol=1e-5, rtol=1e-5)
    assert (got[~mask] == 0).all()


def test_bf16_autocast_within_its_tolerance():
    model = ltm("llama")
    ids, memories = inputs(3)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = plain(model, ids, memories)
        got = model.candidate_losses(ids, memories)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=0.05, rtol=0.02)    # bf16 keeps 8 bits of mantissa


def test_prefix_read_path_and_other_families_are_refused():
    model = ltm("gpt2", read_path="prefix")
    assert not model.shares_trunk
    ids, memories = inputs()
    with pytest.raises(ValueError, match="read_path='prefix'"):
        model.candidate_losses(ids, memories)
    gpt2 = ltm("gpt2")
    gpt2.lm.get_base_model().config.model_type = "gemma"         # a head with logit soft-capping: not cut
    with pytest.raises(ValueError, match="'gemma'"):
        final_norm(gpt2.lm)
