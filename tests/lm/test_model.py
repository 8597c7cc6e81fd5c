import pytest
import torch

from ltm_gym.core import ConfigError, from_dict
from ltm_gym.lm import MemorySettings, build_llmltm, embedding_memory, fixed_projection, load_pretrained_lm
from ltm_gym.metrics import prefix_losses
from tests.fixtures import tiny_study_config


def make(study_data, **memory):
    cfg = tiny_study_config().lm
    for k, v in memory.items():
        setattr(cfg.memory, k, v)
    return build_llmltm(cfg, study_data.tokenizer, seed=1)


def batch(study_data, n=3):
    return torch.stack([d.ids[1] for d in study_data.splits["train"][:n]])


def test_zero_initialized_cross_attention_is_the_base_lm(study_data):
    model = make(study_data)
    ids = batch(study_data)
    mem = torch.randn(3, 4, 16)
    with torch.no_grad():
        logits_mem, losses_mem = model(ids, mem)
        _, losses_none = model(ids)
        bos = torch.full((3, 1), study_data.tokenizer.bos_token_id)
        raw = model.lm(input_ids=torch.cat([bos, ids], 1)).logits[:, :-1]
    assert torch.allclose(logits_mem, raw, atol=1e-6)
    assert torch.allclose(losses_mem, losses_none, atol=1e-6)
    # once the output projection moves, memory matters
    with torch.no_grad():
        model.readers[0].o.weight.normal_()
        _, moved = model(ids, mem)
    assert not torch.allclose(moved, losses_none, atol=1e-3)
    assert len(model.readers) == 2


def test_prefix_read_path(study_data):
    model = make(study_data, read_path="prefix")
    ids = batch(study_data)
    with torch.no_grad():
        a, la = model(ids, torch.randn(3, 4, 16))
        b, lb = model(ids, torch.randn(3, 4, 16))
    assert a.shape == (3, 32, len(study_data.tokenizer)) and la.shape == (3, 32)
    assert not torch.allclose(la, lb)
    assert len(model.readers) == 0


def test_memory_shape_is_checked(study_data):
    with pytest.raises(ValueError, match=r"memory has shape \(3, 10, 64\); expected \(3, 4, 16\)"):
        make(study_data)(batch(study_data), torch.zeros(3, 10, 64))


@pytest.mark.parametrize("read_path", ["cross_attention", "prefix"])
def test_one_pass_prefix_losses_equal_k_passes(study_data, read_path):
    model = make(study_data, read_path=read_path).eval()
    with torch.no_grad():
        model.readers.apply(lambda m: torch.nn.init.normal_(m.weight) if isinstance(m, torch.nn.Linear) else None)
    ids = batch(study_data)
    mem = torch.randn(3, 4, 16)
    lengths = torch.tensor([1, 5, 17, 32])
    with torch.no_grad():
        _, losses = model(ids, mem)
        one_pass = prefix_losses(losses, lengths)
        k_pass = torch.stack([model(ids[:, :l], mem)[1].mean(1) for l in lengths.tolist()], dim=1)
    assert torch.allclose(one_pass, k_pass, atol=1e-5)


def test_adapter_round_trip(study_data, tmp_path):
    model = make(study_data)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    path = model.save_adapters(tmp_path / "a.safetensors")
    assert path.with_suffix(".json").is_file()
    fresh = make(study_data)
    ids, mem = batch(study_data), torch.randn(3, 4, 16)
    with torch.no_grad():
        assert not torch.allclose(fresh(ids, mem)[1], model(ids, mem)[1])
        fresh.load_adapters(path)
        assert torch.allclose(fresh(ids, mem)[1], model(ids, mem)[1], atol=1e-6)
    other = make(study_data, read_path="prefix")
    with pytest.raises(ValueError, match="does not have"):
        other.load_adapters(path)


def test_lora_trains_only_adapters(study_data):
    model = make(study_data)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable) and any(n.startswith("readers.") for n in trainable)
    assert not any("wte" in n or "mlp" in n for n in trainable)


def test_missing_model_offline_fails_fast():
    with pytest.raises(OSError, match="never downloads"):
        load_pretrained_lm("ai-forever/no-such-model-here")


def test_vocab_mismatch(study_data):
    cfg = tiny_study_config().lm
    from ltm_gym.lm import build_tiny_gpt2, check_vocab

    lm = build_tiny_gpt2(cfg.tiny, vocab_size=10, bos_token_id=0)
    with pytest.raises(ValueError, match="only 10 rows"):
        check_vocab(study_data.tokenizer, lm)


def test_embedding_memory_inverts_A_when_it_can():
    A = fixed_projection(slot_dim=16, hidden=8)            # full row rank: A pinv(A) = I
    emb = torch.randn(2, 20, 8)
    mem = embedding_memory(emb, 4, A)
    assert mem.shape == (2, 4, 16)
    pooled = torch.stack([emb[:, i * 5:(i + 1) * 5].mean(1) for i in range(4)], 1)
    assert torch.allclose(mem @ A.T, pooled, atol=1e-5)
    assert torch.equal(fixed_projection(16, 8), A)


def test_read_scale_multiplies_the_reads_output_and_nothing_else():
    from ltm_gym.lm.memory import MemoryCrossAttention

    torch.manual_seed(0)
    plain, scaled = MemoryCrossAttention(16, 4), MemoryCrossAttention(16, 4, scale=32.0)
    scaled.load_state_dict(plain.state_dict())                     # the scale is no parameter
    torch.nn.init.normal_(plain.o.weight)
    scaled.o.weight.data.copy_(plain.o.weight)
    h, mem = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
    torch.testing.assert_close(scaled(h, mem) - h, 32.0 * (plain(h, mem) - h))
    assert set(scaled.state_dict()) == set(plain.state_dict())
    with pytest.raises(ConfigError, match="memory.read_scale"):
        from_dict(MemorySettings, {"read_scale": 0})


def test_slot_order_lets_the_reader_tell_slots_apart_by_place(study_data):
    """Without slot_order the read is invariant to the slots' order; with it, a slot's index matters."""
    ids = batch(study_data)
    mem = torch.randn(3, 4, 16)
    swapped = mem[:, [1, 0, 2, 3]]
    plain, ordered = make(study_data), make(study_data, slot_order=True)
    for model in (plain, ordered):
        with torch.no_grad():
            model.readers.apply(lambda m: torch.nn.init.normal_(m.weight) if isinstance(m, torch.nn.Linear) else None)
    with torch.no_grad():
        ordered.slot_embed.normal_()
        assert torch.allclose(plain(ids, mem)[1], plain(ids, swapped)[1], atol=1e-5)
        assert not torch.allclose(ordered(ids, mem)[1], ordered(ids, swapped)[1], atol=1e-3)
        with pytest.raises(ValueError, match="at most 4"):
            ordered(ids, torch.randn(3, 5, 16))
    assert "slot_embed" in ordered.adapter_state()
    with pytest.raises(ConfigError, match="slot_order"):
        from_dict(MemorySettings, {"slot_order": True, "read_path": "prefix"})


def test_tokens_read_path_reads_the_slots_windows_as_text(study_data):
    """A spelled slot decodes to the window it was selected with, at any scale; the LM reads the held
    slots' windows oldest slot first (a selection writes the newest first), as if they were context."""
    from ltm_gym.lm import selection_codes

    model = make(study_data, read_path="tokens", code_context=2).eval()
    ids = batch(study_data, n=2)
    codes = selection_codes(model, ids)                                       # (2, 32, 16)
    assert codes.shape == (2, 32, 16) and codes.abs().max() <= 1
    mem = torch.zeros(2, 4, 16)
    mem[0, 0], mem[0, 1] = 0.5 * codes[0, 9], 0.5 * codes[0, 4]           # newest first, scaled
    mem[1, 3] = 2.0 * codes[1, 1]                                          # its window starts before the segment
    text, held = model.memory_text(mem)
    assert text[0][held[0]].tolist() == ids[0, 2:5].tolist() + ids[0, 7:10].tolist()
    assert text[1][held[1]].tolist() == ids[1, 0:2].tolist()              # BOS before the segment dropped
    assert held.sum(1).tolist() == [6, 2]
    with torch.no_grad():
        _, losses = model(ids, mem)
        for i in range(2):
            _, alone = model(ids[i : i + 1], context_ids=text[i][held[i]][None])
            assert torch.allclose(losses[i], alone[0], atol=1e-5)
        _, empty = model(ids, torch.zeros(2, 4, 16))
        _, none = model(ids)
    assert torch.allclose(empty, none, atol=1e-5)                           # empty slots hold no text
    assert len(model.readers) == 0 and not model.shares_trunk
    with pytest.raises(ConfigError, match="slot_dim"):
        from_dict(MemorySettings, {"read_path": "tokens", "slot_dim": 4, "code_context": 2})


def test_spelled_slots_are_read_as_their_tokens_embeddings(study_data):
    """With ``spelled``, a cross-attention reader reads a slot as the LM's embeddings of the tokens
    it spells (the same read for a slot at any scale, zero for an empty slot) and its query code as
    the embeddings of the window before each position."""
    from ltm_gym.lm import selection_codes

    model = make(study_data, spelled=True, code_context=2, query_code=True).eval()
    ids = batch(study_data, n=2)
    codes = selection_codes(model, ids)
    mem = torch.zeros(2, 4, 16)
    mem[:, 0] = codes[:, 7]
    inputs = model.slot_inputs(mem)
    assert inputs.shape == (2, 4, 3 * model.hidden) and model.memory_proj.in_features == 3 * model.hidden
    assert torch.allclose(model.slot_inputs(3.0 * mem), inputs) and (inputs[:, 1:] == 0).all()
    emb = model.token_embeddings(ids[0, 5:8])
    expect = (emb / emb.pow(2).mean(-1, keepdim=True).sqrt()).flatten()
    assert torch.allclose(inputs[0, 0], expect, atol=1e-5)
    full = torch.cat([torch.full((2, 1), model.bos_token_id), ids], 1)
    query = model.window_embeddings(full)                                   # (2, 33, 3 H)
    assert torch.allclose(query[0, 8], expect, atol=1e-5)                   # position 8 of [BOS, ids] reads ids[7]
    with torch.no_grad():
        model.readers.apply(lambda m: torch.nn.init.normal_(m.weight) if isinstance(m, torch.nn.Linear) else None)
        a, b = model(ids, mem)[1], model(ids, 2.0 * mem)[1]
        c = model(ids, torch.cat([mem[:, :1], codes[:, 3:4]], 1))[1]
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, c, atol=1e-3)
    with pytest.raises(ConfigError, match="spelled"):
        from_dict(MemorySettings, {"spelled": True, "read_path": "prefix"})


def test_a_segments_windows_reach_back_into_the_document_before_it():
    """``tokens_before`` gives the tokens right before each segment (across several segments when
    the window is wider than one, BOS before the document), and ``token_windows`` starts the first
    positions' windows with them."""
    from ltm_gym.lm.memory import token_windows, tokens_before

    doc = torch.arange(12).reshape(3, 4) + 10                      # 3 segments of 4 tokens
    assert tokens_before(doc, [0, 1, 2], 2, 0).tolist() == [[0, 0], [12, 13], [16, 17]]
    assert tokens_before(doc, [1, 2], 6, 0).tolist() == [[0, 0, 10, 11, 12, 13], [12, 13, 14, 15, 16, 17]]
    windows = token_windows(doc[2:], 2, 0, tokens_before(doc, [2], 2, 0))
    assert windows[0, 0].tolist() == [16, 17, 18] and windows[0, 3].tolist() == [19, 20, 21]
    assert token_windows(doc[2:], 2, 0)[0, 0].tolist() == [0, 0, 18]         # without: BOS
    with pytest.raises(ValueError, match="before has shape"):
        token_windows(doc[2:], 2, 0, torch.zeros(1, 3, dtype=torch.long))
