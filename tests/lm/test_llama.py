"""The LLM-LTM on the Llama family (SmolLM2's): a tiny random Llama read through memory
cross-attention and LoRA on its attention projections, its selection codes, its adapters, bf16."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ltm_gym.lm import LLMLTM, LoraSettings, MemorySettings, selection_codes

BOS = 1


def tiny_llama_ltm(seed: int = 0, **memory) -> LLMLTM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, bos_token_id=BOS)
    return LLMLTM(LlamaForCausalLM(cfg), MemorySettings(n_slots=4, slot_dim=16, **memory),
                  LoraSettings(target_modules=["q_proj", "v_proj"]), bos_token_id=BOS)


@pytest.fixture
def ids():
    return torch.randint(2, 100, (2, 12), generator=torch.Generator().manual_seed(0))


def test_zero_initialized_reader_is_the_base_llama_then_memory_matters(ids):
    model = tiny_llama_ltm()
    mem = torch.randn(2, 4, 16)
    with torch.no_grad():
        logits, losses = model(ids, mem)
        raw = model.lm(input_ids=torch.cat([torch.full((2, 1), BOS), ids], 1)).logits[:, :-1]
        torch.testing.assert_close(logits, raw, atol=1e-5, rtol=1e-5)
        for r in model.readers:
            r.o.weight.normal_()
        _, moved = model(ids, mem)
    assert len(model.readers) == 2 and not torch.allclose(moved, losses, atol=1e-3)


def test_lora_on_the_attention_projections_trains_only_adapters():
    trainable = [n for n, p in tiny_llama_ltm().named_parameters() if p.requires_grad]
    assert any("q_proj.lora_A" in n for n in trainable) and any("v_proj.lora_A" in n for n in trainable)
    assert any(n.startswith("readers.") for n in trainable)
    assert not any("embed_tokens" in n or "mlp" in n or "k_proj.base" in n for n in trainable)


def test_selection_codes_and_adapters_round_trip(ids, tmp_path):
    model = tiny_llama_ltm()
    codes = selection_codes(model, ids)
    assert codes.shape == (2, 12, 16) and float(codes.abs().max()) == pytest.approx(1.0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    path = model.save_adapters(tmp_path / "a.safetensors")
    fresh, mem = tiny_llama_ltm(), torch.randn(2, 4, 16)
    with torch.no_grad():
        fresh.load_adapters(path)
        torch.testing.assert_close(fresh(ids, mem)[1], model(ids, mem)[1], atol=1e-6, rtol=1e-6)


def test_bf16_autocast_reads_memory_like_fp32(ids):
    model = tiny_llama_ltm()
    with torch.no_grad():
        for r in model.readers:
            r.o.weight.normal_(std=0.1)
        mem = torch.randn(2, 4, 16)
        _, fp32 = model(ids, mem)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, bf16 = model(ids, mem)
    torch.testing.assert_close(bf16.float(), fp32, atol=0.15, rtol=0.05)   # bf16 keeps 8 bits of mantissa
