"""K candidate memories sharing the memory-free trunk: the same losses as K plain forwards, on the
GPT-2 and Llama families, with and without LoRA, at chosen positions, and under bf16 autocast."""

import copy

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from ltm_gym.lm import LLMLTM, LoraSettings, MemorySettings
from ltm_gym.lm import model as model_module
from ltm_gym.lm.trunk import final_norm

V, B, L, K = 96, 3, 10, 4


def ltm(family: str, lora: bool = True, layers: int = 4, lora_layers: str = "all", **memory) -> LLMLTM:
    torch.manual_seed(0)
    if family == "gpt2":
        lm = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=64, n_embd=32, n_layer=layers, n_head=4, bos_token_id=0))
        targets = ["c_attn"]
    else:
        lm = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                          bos_token_id=0))
        targets = ["q_proj", "v_proj"]
    model = LLMLTM(lm, MemorySettings(n_slots=5, slot_dim=8, **memory), LoraSettings(enabled=lora, target_modules=targets,
                                                                                   layers=lora_layers),
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


def uncached(model: LLMLTM, *args, **kwargs):
    cache, model.trunk_cache = model.trunk_cache, None
    try:
        return model(*args, **kwargs)
    finally:
        model.trunk_cache = cache


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_frozen_trunk_is_cached_per_segment_with_the_plain_results(family):
    model = ltm(family, lora_layers="memory")
    assert model.trunk_cacheable()
    assert not any(p.requires_grad for n, p in model.lm.named_parameters() if ".0." in n or ".1." in n)
    ids, memories = inputs()
    mem = memories[0]
    with torch.no_grad():
        want = uncached(model, ids, mem, return_hidden=True)
        first = model(ids, mem, return_hidden=True)
        mixed = torch.cat([ids[1:], torch.randint(1, V, (1, L))])          # two cached rows, one new
        again = model(mixed, mem, return_hidden=True)
        want_mixed = uncached(model, mixed, mem, return_hidden=True)
        shared = model.candidate_losses(ids, memories)
        cache, model.trunk_cache = model.trunk_cache, None
        want_shared = plain(model, ids, memories)
        model.trunk_cache = cache
    for got, ref in ((first, want), (again, want_mixed)):
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared, want_shared, atol=1e-5, rtol=1e-5)
    assert (cache.misses, len(cache.rows)) == (4, 4) and cache.hits == 2 + B


def test_the_reader_trains_on_the_cached_trunk_with_the_plain_gradients():
    model = ltm("llama", lora_layers="memory").train()
    ids, memories = inputs(4)
    grads = []
    for cached in (False, True):
        model.zero_grad()
        losses = (model if cached else lambda *a: uncached(model, *a))(ids, memories[0])[1]
        losses.mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert model.trunk_cache.misses == B and grads[0].keys() == grads[1].keys() and len(grads[0]) > 4
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-6, rtol=1e-5)


def test_a_changed_trunk_empties_the_cache():
    model = ltm("gpt2", lora_layers="memory")
    ids, memories = inputs(5)
    with torch.no_grad():
        before = model(ids, memories[0])[1]
        embeddings = model.lm.get_input_embeddings()
        embeddings.load_state_dict({"weight": embeddings.weight * 1.5})   # loaded into a submodule
        after = model(ids, memories[0])[1]
        want = uncached(model, ids, memories[0])[1]
        model.lm.get_input_embeddings().weight.mul_(1.5)                  # edited by hand, then said
        model.trunk_changed()
        edited = model(ids, memories[0])[1]
        want_edited = uncached(model, ids, memories[0])[1]
        twin = copy.deepcopy(model)                                       # a copy's loads reach its own cache
        twin.load_state_dict(model.state_dict())
        assert twin._trunk_generation == model._trunk_generation + len(list(model.lm.modules()))
    assert not torch.allclose(before, after, atol=1e-3)
    torch.testing.assert_close(after, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(edited, want_edited, atol=1e-5, rtol=1e-5)
    assert model.trunk_cache.misses == 3 * B


def test_what_is_never_cached():
    assert not ltm("llama").trunk_cacheable()                              # LoRA below the memory blocks trains
    dropout = ltm("gpt2", lora_layers="memory")
    assert dropout.trunk_cacheable() and not dropout.train().trunk_cacheable()   # GPT-2's dropout, training
    with pytest.raises(ValueError, match="lora.layers='memory' needs read_path='cross_attention'"):
        ltm("gpt2", lora_layers="memory", read_path="prefix")


def test_a_small_cache_drops_its_oldest_rows_and_stays_exact():
    model = ltm("llama", lora_layers="memory")
    model.trunk_cache.max_bytes = 2 * (L + 1) * 32 * 4                     # two rows of trunk states
    ids, memories = inputs(6)
    with torch.no_grad():
        got = [model(ids, memories[0])[1] for _ in range(2)]
        want = uncached(model, ids, memories[0])[1]
    for g in got:
        torch.testing.assert_close(g, want, atol=1e-5, rtol=1e-5)
    assert len(model.trunk_cache.rows) == 2 and model.trunk_cache.bytes <= model.trunk_cache.max_bytes


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_query_codes_are_the_positions_own_selection_codes_on_every_path(family):
    from ltm_gym.lm import selection_codes

    model = ltm(family, lora_layers="memory", query_code=True, code_context=2)
    readers = list(model.readers)
    assert all(r.code_q is not None and r.code_q.weight.shape == (32, 8) for r in readers)
    ids, memories = inputs(5)
    seen = []
    hook = readers[0].register_forward_hook(lambda m, args, out: seen.append(args[2]))
    with torch.no_grad():
        want = uncached(model, ids, memories[0])[1]
        got = model(ids, memories[0])[1]                                  # from the trunk cache
        shared = model.candidate_losses(ids, memories)
        cache, model.trunk_cache = model.trunk_cache, None
        want_shared = plain(model, ids, memories)
        model.trunk_cache = cache
    hook.remove()
    full = torch.cat([torch.zeros(B, 1, dtype=ids.dtype), ids], 1)        # [BOS, segment]
    torch.testing.assert_close(seen[0], selection_codes(model, full))
    torch.testing.assert_close(seen[2], selection_codes(model, full).repeat(K, 1, 1))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared, want_shared, atol=1e-5, rtol=1e-5)
    with torch.no_grad():                                                 # the codes change the read
        for r in readers:
            r.code_q.weight.zero_()
        without = model(ids, memories[0])[1]
    assert not torch.allclose(without, got, atol=1e-4)


def test_query_codes_get_gradients_and_start_as_the_base_lm():
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      bos_token_id=0))
    base = LLMLTM(lm, MemorySettings(n_slots=5, slot_dim=8), LoraSettings(enabled=False), bos_token_id=0).eval()
    ids, memories = inputs(6)
    with torch.no_grad():
        without = base(ids)[1]
    model = LLMLTM(lm, MemorySettings(n_slots=5, slot_dim=8, query_code=True), LoraSettings(enabled=False),
                   bos_token_id=0).eval()
    losses = model(ids, memories[0])[1]
    torch.testing.assert_close(losses, without)                           # W_o = 0: nothing read yet
    with torch.no_grad():
        model.readers[-1].o.weight.normal_()
    model(ids, memories[0])[1].mean().backward()
    assert model.readers[-1].code_q.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="memory.query_code"):
        from ltm_gym.core import from_dict
        from_dict(MemorySettings, {"query_code": True, "read_path": "prefix"})
