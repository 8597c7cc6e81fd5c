import numpy as np
import pytest
import torch

from ltm_gym.envs import LLMMemoryEnv, LLMMemoryVectorEnv
from ltm_gym.lm import selection_codes, tokens_before


def test_select_stores_the_codes_of_the_best_positions_and_keeps_old_slots(backend):
    env = LLMMemoryEnv(backend=backend, action_mode="select", reward_mode="full")
    obs, _ = env.reset(seed=0, options={"document": 1})
    L, m = 32, 4
    assert env.action_space.shape == (L + m,)
    codes = selection_codes(backend.model, torch.as_tensor(obs["tokens"])[None])[0].numpy()
    assert np.abs(codes).max() == pytest.approx(1.0)
    a = np.full(L + m, -1.0, np.float32)
    a[[3, 7, 20, 31]] = [0.5, 0.9, 0.2, 0.1]
    obs, *_ = env.step(a)
    np.testing.assert_allclose(obs["memory"], codes[[3, 7, 20, 31]], atol=1e-6)
    written = obs["memory"].copy()
    b = np.full(L + m, -1.0, np.float32)
    b[L + 1] = b[L + 2] = 1.0                  # keep old slots 1 and 2
    b[[0, 5]] = 0.0
    doc = env.episodes.docs[1].ids
    c, bos = backend.model.mem_cfg.code_context, backend.model.bos_token_id
    before = tokens_before(doc, [1], c, bos)                     # segment 0's last tokens
    assert before.tolist() == [doc[0, -c:].tolist()] and tokens_before(doc, [0], c, bos).tolist() == [[bos] * c]
    new_codes = selection_codes(backend.model, torch.as_tensor(obs["tokens"])[None], before)[0].numpy()
    cut = selection_codes(backend.model, torch.as_tensor(obs["tokens"])[None])[0].numpy()
    assert np.abs(new_codes[0] - cut[0]).max() > 1e-3 and np.allclose(new_codes[c:], cut[c:])
    obs, *_ = env.step(b)
    # position 0's window reaches back into segment 0, not to BOS
    np.testing.assert_allclose(obs["memory"], np.stack([new_codes[0], new_codes[5], written[1], written[2]]), atol=1e-6)


def test_an_empty_slot_is_never_kept_while_anything_else_is_left(backend):
    env = LLMMemoryEnv(backend=backend, action_mode="select", reward_mode="full")
    obs, _ = env.reset(seed=0, options={"document": 1})
    L, m = 32, 4
    assert not obs["memory"].any()
    codes = selection_codes(backend.model, torch.as_tensor(obs["tokens"])[None])[0].numpy()
    keep_all = np.full(L + m, -1.0, np.float32)
    keep_all[L:] = 1.0                         # keep every (empty) slot, write 2 positions
    keep_all[[9, 4]] = [0.5, 0.0]
    obs, *_ = env.step(keep_all)
    # the 2 best positions, then the earliest of the rest (ties): not the empty slots
    np.testing.assert_allclose(obs["memory"], codes[[0, 1, 4, 9]], atol=1e-6)
    written = obs["memory"].copy()
    obs, *_ = env.step(keep_all)               # written slots are kept as before
    np.testing.assert_allclose(obs["memory"], written, atol=1e-6)


def test_spacing_keeps_the_stored_positions_apart(backend):
    """``spacing=3``: taken best first, a stored position rules out the positions within 3 of it
    (old slots never); the rest as without it; refused outside select mode."""
    env = LLMMemoryEnv(backend=backend, action_mode="select", reward_mode="full", spacing=3)
    obs, _ = env.reset(seed=0, options={"document": 1})
    L, m = 32, 4
    codes = selection_codes(backend.model, torch.as_tensor(obs["tokens"])[None])[0].numpy()
    a = np.full(L + m, -1.0, np.float32)
    a[[10, 11, 13, 14, 20]] = [0.9, 0.8, 0.7, 0.6, 0.5]
    obs, *_ = env.step(a)
    np.testing.assert_allclose(obs["memory"], codes[[0, 10, 14, 20]], atol=1e-6)   # 11, 13 are 10's neighbours
    written = obs["memory"].copy()
    b = np.full(L + m, -1.0, np.float32)
    b[L:] = 1.0                                                  # every old slot, then position 2
    b[2] = 0.5
    obs, *_ = env.step(b)
    np.testing.assert_allclose(obs["memory"], written, atol=1e-6)
    with pytest.raises(ValueError, match="spacing"):
        LLMMemoryEnv(backend=backend, action_mode="full", spacing=2)
    with pytest.raises(ValueError, match="spacing"):
        LLMMemoryEnv(backend=backend, action_mode="select", spacing=-1)


def test_select_observation_carries_the_codes_a_selection_stores(backend):
    env = LLMMemoryEnv(backend=backend, action_mode="select", reward_mode="full", action_scale=0.5)
    obs, _ = env.reset(seed=0, options={"document": 2})
    assert env.observation_space["codes"].shape == (32, backend.slot_dim)
    assert env.observation_space.contains(obs)
    expected = selection_codes(backend.model, torch.as_tensor(obs["tokens"])[None])[0].numpy() * 0.5
    np.testing.assert_allclose(obs["codes"], expected, atol=1e-7)
    a = np.full(36, -1.0, np.float32)
    a[[1, 4, 9, 30]] = 1.0
    nxt, *_ = env.step(a)
    np.testing.assert_array_equal(nxt["memory"], obs["codes"][[1, 4, 9, 30]])   # bit for bit what is stored
    assert not np.array_equal(nxt["codes"], obs["codes"])                       # the next segment's
    assert "codes" not in LLMMemoryEnv(backend=backend, action_mode="full").observation_space.spaces


def test_select_code_depends_on_the_token_and_its_predecessor(backend):
    ids = torch.tensor([[5, 6, 7, 6], [9, 6, 7, 6]])
    c = selection_codes(backend.model, ids)
    assert torch.allclose(c[0, 2], c[1, 2])                    # same (6, 7) pair
    assert not torch.allclose(c[0, 1], c[1, 1])                # (5, 6) vs (9, 6)
    assert not torch.allclose(c[0, 1], c[0, 3])                # (5, 6) vs (7, 6)


def test_a_wider_code_context_carries_the_tokens_further_back(backend):
    ids = torch.tensor([[5, 6, 7, 8], [9, 6, 7, 8], [5, 6, 7, 8]])
    one = selection_codes(backend.model, ids)
    backend.model.mem_cfg.code_context = 3
    try:
        three = selection_codes(backend.model, ids)
        backend.model.mem_cfg.code_context = 2
        two = selection_codes(backend.model, ids)
    finally:
        backend.model.mem_cfg.code_context = 1
    assert torch.allclose(one[0, 3], one[1, 3])                # (7, 8): the 5 / 9 three tokens back is unseen
    assert torch.allclose(two[0, 3], two[1, 3])                # (6, 7, 8) still
    assert not torch.allclose(three[0, 3], three[1, 3])        # (5, 6, 7, 8) vs (9, 6, 7, 8)
    assert torch.equal(three[0], three[2]) and three.abs().amax(-1).eq(1).all()


@pytest.mark.parametrize("mode", ["prefix_sampled", "prefix", "answer", "full", "delta", "gain"])
@pytest.mark.parametrize("action_mode", ["full", "select"])
def test_score_actions_equals_step_for_each_candidate(backend, mode, action_mode):
    env = LLMMemoryEnv(backend=backend, action_mode=action_mode, reward_mode=mode)
    rng = np.random.default_rng(0)
    env.reset(seed=4)
    cands = rng.uniform(-1, 1, (5, *env.action_space.shape)).astype(np.float32)
    state = (env.episodes.t.copy(), env.episodes.memory.copy())
    scores = env.score_actions(cands)
    assert scores.shape == (5,)
    assert np.array_equal(env.episodes.t, state[0]) and np.array_equal(env.episodes.memory, state[1])
    for i, a in enumerate(cands):
        twin = LLMMemoryEnv(backend=backend, action_mode=action_mode, reward_mode=mode)
        twin.reset(seed=4)
        _, r, *_ = twin.step(a)
        assert r == pytest.approx(scores[i], abs=1e-5)
    _, r, *_ = env.step(cands[2])                              # the env still steps as before
    assert r == pytest.approx(scores[2], abs=1e-5)


@pytest.mark.parametrize("mode", ["prefix_sampled", "prefix", "answer", "gain"])
def test_score_actions_shares_the_trunk_and_equals_one_forward_per_candidate(backend, mode, monkeypatch):
    model_type = type(backend.model)
    shared = []
    original = model_type.candidate_losses
    monkeypatch.setattr(model_type, "candidate_losses", lambda self, *a, **kw: shared.append(1) or original(self, *a, **kw))
    extra = {"gain_threshold": 0.0} if mode == "gain" else {}   # this LM's changes are all < 1 nat
    venv = LLMMemoryVectorEnv(num_envs=3, backend=backend, action_mode="select", reward_mode=mode, **extra)
    venv.reset(seed=5)
    cands = np.random.default_rng(3).uniform(-1, 1, (4, 3, 36)).astype(np.float32)
    ours = venv.score_actions(cands)
    venv.episodes.reward.shared_trunk = False
    plain = venv.score_actions(cands)
    assert shared == [1]                                       # one shared call for the 4 x 3 candidates
    np.testing.assert_allclose(ours, plain, atol=1e-5, rtol=1e-5)
    assert np.ptp(plain, axis=0).max() > 1e-3                  # the candidates' rewards differ


def test_vector_score_actions(backend):
    venv = LLMMemoryVectorEnv(num_envs=3, backend=backend, action_mode="select", reward_mode="prefix_sampled")
    venv.reset(seed=1)
    cands = np.random.default_rng(2).uniform(-1, 1, (4, 3, 36)).astype(np.float32)
    scores = venv.score_actions(cands)
    assert scores.shape == (4, 3)
    _, r, *_ = venv.step(cands[3])
    np.testing.assert_allclose(r, scores[3], atol=1e-5)
    with pytest.raises(ValueError, match="action shape"):
        venv.score_actions(cands[:, :2])


def test_prefix_reward_without_its_lengths_is_refused(backend):
    from ltm_gym.envs.reward import Reward, RewardConfig, Segments

    reward = Reward(backend, RewardConfig(mode="prefix_sampled"))
    doc = backend.docs("train")[0]
    seg = Segments(ids=doc.ids[:1], answer_mask=doc.answer_mask[:1], keys=[(0, 0, "train")])
    with pytest.raises(ValueError, match="prefix lengths"):
        reward(torch.zeros(1, backend.n_slots, backend.slot_dim), seg)
    with pytest.raises(ValueError, match="prefix lengths"):
        reward.candidates(torch.zeros(2, 1, backend.n_slots, backend.slot_dim), seg)


def test_the_env_computes_a_frozen_trunk_once_per_segment():
    from ltm_gym.data.segments import Document
    from ltm_gym.envs import MemoryLMBackend
    from tests.lm.test_trunk import V, ltm

    model = ltm("llama", lora_layers="memory")
    g = torch.Generator().manual_seed(0)
    docs = [Document(torch.randint(1, V, (4, 12), generator=g), torch.rand(4, 12, generator=g) < 0.25, i)
            for i in range(3)]
    backend = MemoryLMBackend(model, {"train": docs}, device="cpu")
    env = LLMMemoryVectorEnv(num_envs=2, backend=backend, reward_mode="answer", action_mode="select")
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 2, *env.single_action_space.shape)).astype(np.float32)

    def episode():
        env.reset(seed=0)
        return [env.score_actions(actions)] + [env.step(a)[1] for a in actions[:2]]

    first = episode()
    cache = model.trunk_cache
    misses = cache.misses
    assert 0 < misses <= 2 * 3                                     # each segment the rewards read, once
    again = episode()
    assert cache.misses == misses and cache.hits > 0
    model.trunk_cache = None
    plain = episode()
    for a, b, c in zip(first, again, plain):
        np.testing.assert_allclose(a, c, atol=1e-5)
        np.testing.assert_array_equal(a, b)
