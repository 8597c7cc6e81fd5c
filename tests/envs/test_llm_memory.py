import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

import ltm_gym  # noqa: F401  (registers the ids)
from ltm_gym.core import ConfigError, to_dict
from ltm_gym.data.segments import Document
from ltm_gym.envs import LLMMemoryEnv, MemoryLMBackend
from ltm_gym.lm import build_llmltm
from tests.envs.conftest import MemorySumLM
from tests.fixtures import tiny_study_config


def make(backend, **kw):
    return LLMMemoryEnv(backend=backend, **kw)


def rollout(env, seed, n=2, scale=0.5):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rng = np.random.default_rng(0)
    for _ in range(n):
        a = (rng.uniform(-1, 1, env.action_space.shape) * scale).astype(np.float32)
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, term, trunc))
        if term or trunc:
            break
    return out


@pytest.mark.parametrize("kw", [{}, {"obs_mode": "hidden"}, {"action_mode": "slot"}, {"reward_mode": "mimic"}])
def test_gymnasium_check_env_has_no_warnings(backend, kw):
    from gymnasium.utils.env_checker import check_env

    env = make(backend, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


def test_sb3_check_env(backend):
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(make(backend), warn=True)
    # the one remaining advice: the (n_slots, slot_dim) memory is 2-D, which SB3's default MLP
    # extractor would flatten; agents read it with their own features extractor
    messages = [str(w.message) for w in caught]
    assert all("observation memory has an unconventional shape" in m for m in messages), messages


def test_types_and_fresh_arrays(backend):
    env = make(backend)
    obs, info = env.reset(seed=1)
    assert obs["tokens"].dtype == np.int64 and obs["memory"].dtype == np.float32
    assert not obs["memory"].any()
    action = np.full(env.action_space.shape, 0.25, np.float32)
    obs2, r, term, trunc, info = env.step(action)
    assert type(r) is float and type(term) is bool and type(trunc) is bool
    assert np.allclose(obs2["memory"], 0.25)
    obs2["memory"][:] = 9.0  # mutating a returned array must not touch the env
    action[:] = -1.0          # nor mutating the action afterwards
    obs3, *_ = env.step(np.zeros(env.action_space.shape, np.float32))
    assert not np.shares_memory(obs2["memory"], obs3["memory"])
    assert env.episodes.memory.max() <= 1.0
    assert {"ce", "ppl", "top5", "top100", "answer_ce", "recall_acc"} <= set(info)
    env = make(backend, reward_mode="prefix_sampled")
    env.reset(seed=1)
    assert len(env.step(action)[-1]["prefix_lengths"]) == 4


def test_prefix_reward_is_the_exact_expectation_of_the_sampled_one(backend):
    """prefix = the mean of the prefix loss over every length l = 1..L (what prefix_sampled draws)."""
    from ltm_gym.envs import Reward, RewardConfig, Segments
    from ltm_gym.metrics import prefix_losses

    doc = backend.docs("train")[0]
    L = doc.ids.shape[1]
    memory = torch.full((1, backend.n_slots, backend.slot_dim), 0.3)
    seg = Segments(doc.ids[1:2], doc.answer_mask[1:2], [(0, 1, "train")], torch.arange(1, L + 1)[None])
    terms = Reward(backend, RewardConfig(mode="prefix"))(memory, seg)
    every_length = -prefix_losses(terms["losses"], seg.lengths).mean(1)
    assert float(terms["reward"][0]) == pytest.approx(float(every_length[0]), abs=1e-5)
    sampled = Reward(backend, RewardConfig(mode="prefix_sampled"))(memory, seg)["reward"]
    assert float(sampled[0]) == pytest.approx(float(every_length[0]), abs=1e-5)


def test_same_seed_same_episode_bitwise(backend):
    a = rollout(make(backend), seed=7)
    b = rollout(make(backend), seed=7)
    assert np.array_equal(a[0]["tokens"], b[0]["tokens"])
    for (oa, ra, *_), (ob, rb, *_) in zip(a[1:], b[1:]):
        assert ra == rb and np.array_equal(oa["tokens"], ob["tokens"]) and np.array_equal(oa["memory"], ob["memory"])
    c = rollout(make(backend), seed=8)
    assert [x[1] for x in a[1:]] != [x[1] for x in c[1:]]


def test_episode_terminates_after_last_segment_and_truncates(backend):
    env = make(backend)
    env.reset(seed=0, options={"document": 3})
    n_seg = backend.docs("train")[3].n_segments
    flags = [env.step(np.zeros(env.action_space.shape, np.float32))[2] for _ in range(n_seg - 1)]
    assert flags == [False] * (n_seg - 2) + [True]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(env.action_space.shape, np.float32))
    short = make(backend, max_segments=1)
    short.reset(seed=0)
    _, _, term, trunc, _ = short.step(np.zeros(short.action_space.shape, np.float32))
    assert trunc and not term


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 16), np.float32), "shape"),
    (np.zeros((4, 16), np.int64), "dtype"),
    (np.full((4, 16), np.nan, np.float32), "NaN"),
    (np.full((4, 16), np.inf, np.float32), "inf"),
    (np.full((4, 16), 1.5, np.float32), "outside the action space"),
])
def test_bad_actions_leave_state_unchanged(backend, bad, message):
    good = np.full((4, 16), 0.3, np.float32)
    ref = make(backend)
    ref.reset(seed=3)
    expected = ref.step(good)
    env = make(backend)
    env.reset(seed=3)
    with pytest.raises(ValueError, match=message):
        env.step(bad)
    got = env.step(good)
    assert got[1] == expected[1] and np.array_equal(got[0]["tokens"], expected[0]["tokens"])
    assert np.array_equal(got[0]["memory"], expected[0]["memory"])


def test_reward_reflects_this_action_not_the_last():
    docs = [Document(torch.randint(0, 50, (4, 10)), torch.zeros(4, 10, dtype=torch.bool), i) for i in range(3)]
    backend = MemoryLMBackend(MemorySumLM(), {"train": docs}, device="cpu")
    env = LLMMemoryEnv(backend=backend, reward_mode="full")
    env.reset(seed=0)
    shape = env.action_space.shape
    r1 = env.step(np.full(shape, 0.5, np.float32))[1]
    r2 = env.step(np.full(shape, -0.2, np.float32))[1]
    assert r1 == pytest.approx(-2.5) and r2 == pytest.approx(-1.8)
    prefix = LLMMemoryEnv(backend=backend, reward_mode="prefix", k=3)
    prefix.reset(seed=0)
    assert prefix.step(np.full(shape, 0.5, np.float32))[1] == pytest.approx(-2.5)


def test_gain_reward_credits_token_changes_above_the_threshold():
    """Every token loss is 2 + mean(memory) (no memory: 2), 10 tokens a segment: a memory of -0.5
    lowers each by 0.5 nats, credited 0.5 - tau per token; +0.8 raises each by 0.8 (signed)."""
    docs = [Document(torch.randint(0, 50, (4, 10)), torch.zeros(4, 10, dtype=torch.bool), i) for i in range(3)]
    backend = MemoryLMBackend(MemorySumLM(), {"train": docs}, device="cpu")
    for tau, value, expected in [(0.2, -0.5, 10 * 0.3), (1.0, -0.5, 0.0), (0.5, 0.8, -10 * 0.3)]:
        env = LLMMemoryEnv(backend=backend, reward_mode="gain", gain_threshold=tau)
        env.reset(seed=0)
        r = env.step(np.full(env.action_space.shape, value, np.float32))[1]
        assert r == pytest.approx(expected, abs=1e-5), (tau, value)
    delta = LLMMemoryEnv(backend=backend, reward_mode="delta")
    delta.reset(seed=0)
    assert delta.step(np.full(delta.action_space.shape, -0.5, np.float32))[1] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="gain_threshold"):
        LLMMemoryEnv(backend=backend, reward_mode="gain", gain_threshold=-1.0)


def test_no_memory_losses_run_once_per_segment_and_model_revision():
    """K candidates of one state repeat its key: one no-memory row each, cached until the LM changes."""
    docs = [Document(torch.randint(0, 50, (4, 10)), torch.zeros(4, 10, dtype=torch.bool), i) for i in range(3)]
    backend = MemoryLMBackend(MemorySumLM(), {"train": docs}, device="cpu")
    reward = LLMMemoryEnv(backend=backend, reward_mode="gain").episodes.reward
    rows = []
    forward = backend.model.forward
    backend.model.forward = lambda ids, *a, **kw: rows.append(len(ids)) or forward(ids, *a, **kw)
    ids = torch.stack([docs[0].ids[1], docs[1].ids[1]] * 3)
    keys = [(0, 1, "train"), (1, 1, "train")] * 3
    out = reward.no_memory_losses(ids, keys)
    assert out.shape == (6, 10) and torch.equal(out[0], out[4]) and rows == [2]
    reward.no_memory_losses(ids, keys)
    assert rows == [2]                                          # cached
    backend.revision += 1
    reward.no_memory_losses(ids, keys)
    assert rows == [2, 2]                                       # recomputed for the new LM


def test_reward_modes(backend):
    for mode in ("full", "answer", "delta", "gain", "prefix", "prefix_sampled"):
        env = make(backend, reward_mode=mode)
        env.reset(seed=0, options={"document": 0})
        obs, r, *_ , info = env.step(np.full(env.action_space.shape, 0.5, np.float32))
        assert np.isfinite(r)
        if mode == "full":
            assert r == pytest.approx(-info["ce"], abs=1e-6)
        if mode == "answer":
            assert r == pytest.approx(-info["answer_ce"], abs=1e-5)
    env = make(backend, reward_mode="delta")
    env.reset(seed=0, options={"document": 0})
    r_zero = env.step(np.zeros(env.action_space.shape, np.float32))[1]
    assert np.isfinite(r_zero)


def test_mimic_reward_is_distance_decrease(backend):
    env = gym.make("ltm_gym/EmbeddingMimic-v0", backend=backend).unwrapped
    env.reset(seed=0)
    emb = backend.model.lm.get_input_embeddings().weight.detach()
    A = env.episodes.reward._A

    def d(m):
        return float(torch.cdist(torch.as_tensor(m) @ A.T, emb).min(1).values.sum())

    a = np.random.default_rng(1).uniform(-1, 1, env.action_space.shape).astype(np.float32)
    _, r, *_ = env.step(a)
    assert r == pytest.approx(d(np.zeros_like(a)) - d(a), rel=1e-4)


def test_slot_action_writes_one_slot(backend):
    env = make(backend, action_mode="slot")
    env.reset(seed=0)
    a = np.zeros(17, np.float32)
    a[0], a[1:] = 0.9, 0.5        # last of 4 slots
    obs, *_ = env.step(a)
    assert np.allclose(obs["memory"][3], 0.5) and not obs["memory"][:3].any()


@pytest.mark.parametrize("reward_mode", ["prefix", "mimic"])
def test_hidden_observation(backend, reward_mode):
    env = make(backend, obs_mode="hidden", reward_mode=reward_mode)
    obs, _ = env.reset(seed=0)
    assert obs["hidden"].shape == (backend.model.hidden,) and np.isfinite(obs["hidden"]).all()
    obs2, *_ = env.step(np.full(env.action_space.shape, 0.5, np.float32))
    assert not np.allclose(obs["hidden"], obs2["hidden"])
    # the observation is the LM reading the next segment with the memory just written
    ep = env.episodes
    ids = backend.docs("train")[int(ep.doc[0])].ids[1][None]
    with torch.no_grad():
        _, _, hidden = backend.model(ids, torch.full((1, 4, 16), 0.5), return_hidden=True)
    expected = hidden.mean(1)[0].numpy()
    assert np.allclose(obs2["hidden"], expected, atol=1e-5)


def test_the_env_is_a_simulator_and_co_training_is_a_wrapper(study_data):
    """step never changes the model; lm_update=True (gym.make) wraps the env, whose step then takes
    one AdamW step on the LM loss of exactly what the reward scored."""
    from ltm_gym.envs import CoTrainReader, LLMMemoryEnv
    from ltm_gym.lm import build_llmltm

    cfg = tiny_study_config()
    model = build_llmltm(cfg.lm, study_data.tokenizer, seed=0)
    backend = MemoryLMBackend(model, study_data.splits, study_data.tokenizer, device="cpu")
    trainable = lambda: {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}  # noqa: E731
    before = trainable()
    action = np.full((4, 16), 0.5, np.float32)
    plain = LLMMemoryEnv(backend=backend, reward_mode="full")
    plain.reset(seed=0)
    _, reward, *_, info = plain.step(action)
    assert "lm_loss" not in info and all(torch.equal(p, before[n]) for n, p in trainable().items())
    with pytest.raises(ValueError, match="lm_update=True trains the reader"):
        LLMMemoryEnv(backend=backend, lm_update=True)

    env = gym.make("ltm_gym/LLMMemory-v0", backend=backend, reward_mode="full", lm_update=True, lm_lr=1e-2)
    assert isinstance(env.env.env, CoTrainReader)
    env.reset(seed=0)
    _, wrapped_reward, *_, info = env.step(action)
    assert wrapped_reward == pytest.approx(reward, abs=1e-6)        # the reward is scored before the update
    assert info["lm_loss"] == pytest.approx(-reward, abs=1e-5)       # on what the reward scored (full: mean CE)
    changed = [n for n, p in trainable().items() if not torch.equal(p, before[n])]
    assert any("lora" in n for n in changed)
    assert backend.revision == 1


@pytest.mark.parametrize("lm_loss, on_answers", [("answers", None), ("auto", True)])
def test_co_training_on_answers_steps_on_the_answer_tokens_alone(study_data, lm_loss, on_answers):
    """lm_loss=answers (or auto, for a reader its study trained on answers): a step whose next
    segment asks nothing leaves the reader as it is (no lm_loss in info); one that asks is stepped
    on its answer tokens' mean loss, what reward_mode=answer scores."""
    from ltm_gym.lm import build_llmltm

    cfg = tiny_study_config()
    model = build_llmltm(cfg.lm, study_data.tokenizer, seed=0)
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(4, 12, dtype=torch.bool)
    mask[2, 5:8] = True                                                # only segment 2 asks
    docs = [Document(torch.randint(5, model.vocab_size, (4, 12), generator=g), mask.clone(), i) for i in range(2)]
    backend = MemoryLMBackend(model, {"train": docs}, study_data.tokenizer, device="cpu")
    backend.reader_on_answers = bool(on_answers)
    trainable = lambda: {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}  # noqa: E731
    env = gym.make("ltm_gym/LLMMemory-v0", backend=backend, reward_mode="answer", lm_update=True, lm_lr=1e-2,
                   lm_loss=lm_loss)
    assert env.env.env.training.on_answers
    env.reset(seed=0)
    action = np.full((4, 16), 0.5, np.float32)
    before = trainable()
    _, _, *_, info = env.step(action)                                  # scores segment 1: no answers
    assert "lm_loss" not in info and backend.revision == 0
    assert all(torch.equal(p, before[n]) for n, p in trainable().items())
    _, reward, *_, info = env.step(action)                             # scores segment 2
    assert info["lm_loss"] == pytest.approx(-reward, abs=1e-5)
    assert backend.revision == 1 and any(not torch.equal(p, before[n]) for n, p in trainable().items())
    venv = gym.make_vec("ltm_gym/LLMMemory-v0", num_envs=2, vectorization_mode="vector_entry_point", backend=backend,
                        reward_mode="answer", lm_update=True, lm_lr=1e-2, lm_loss=lm_loss)
    venv.reset(seed=0)
    actions = np.full((2, 4, 16), 0.5, np.float32)
    *_, infos = venv.step(actions)
    assert not infos["_lm_loss"].any() and backend.revision == 1
    _, rewards, *_, infos = venv.step(actions)                         # both rows: 3 answer tokens each
    assert infos["_lm_loss"].all() and infos["lm_loss"][0] == pytest.approx(-rewards.mean(), abs=1e-5)
    tokens = gym.make("ltm_gym/LLMMemory-v0", backend=backend, reward_mode="full", lm_update=True, lm_loss="tokens")
    assert not tokens.env.env.training.on_answers
    with pytest.raises(Exception, match="lm_loss"):
        gym.make("ltm_gym/LLMMemory-v0", backend=backend, lm_update=True, lm_loss="answer")


def test_reset_options_and_render(backend):
    env = make(backend, render_mode="ansi")
    obs, info = env.reset(options={"document": 2})
    assert info["document"] == 2
    assert np.array_equal(obs["tokens"], backend.docs("train")[2].ids[0].numpy())
    text = env.render()
    assert "segment 0" in text and "slot norms" in text
    with pytest.raises(ValueError, match="document=999 is out of range"):
        env.reset(options={"document": 999})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"doc": 1})
    with pytest.raises(ValueError, match="render_mode"):
        make(backend, render_mode="human")
    with pytest.raises(ValueError, match="split 'nope'"):
        make(backend, split="nope").reset()


def test_make_by_string_in_fresh_process(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_study_config())))
    code = ("import gymnasium as gym, numpy as np, warnings; warnings.simplefilter('ignore');"
            f"env = gym.make('ltm_gym:ltm_gym/LLMMemory-v0', study_dir=r'{tmp_path}', config=r'{cfg}', device='cpu', untrained=True);"
            "obs, _ = env.reset(seed=0); print(obs['tokens'].shape, env.action_space.shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(32,) (4, 16)" in out.stdout


@pytest.mark.parametrize("mode", ["prefix_sampled", "prefix", "full", "answer"])
def test_differentiable_reward_equals_step_reward_and_has_gradients(backend, mode):
    env = make(backend, reward_mode=mode)
    env.reset(seed=3)
    a = (np.random.default_rng(1).uniform(-1, 1, env.action_space.shape) * 0.5).astype(np.float32)
    memory = torch.from_numpy(a[None]).requires_grad_(True)
    lengths = torch.tensor([[1, 2, 3, 4]]) if mode == "prefix_sampled" else None
    r = env.differentiable_reward(memory, lengths)
    r.sum().backward()
    assert memory.grad is not None and memory.grad.abs().sum() > 0
    _, r_step, *_, info = env.step(a)
    if mode == "prefix_sampled":  # the step drew its own lengths: score those through the same path
        env2 = make(backend, reward_mode=mode)
        env2.reset(seed=3)
        r = env2.differentiable_reward(torch.from_numpy(a[None]), torch.from_numpy(info["prefix_lengths"][None]))
    assert abs(float(r[0].detach()) - r_step) < 1e-5


def test_differentiable_reward_rejects_bad_memory_shape(backend):
    env = make(backend)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="memory shape"):
        env.differentiable_reward(torch.zeros(2, 3, 4), torch.ones(1, 4, dtype=torch.long))


@pytest.mark.parametrize("mode", ["prefix_sampled", "prefix", "answer"])
def test_differentiable_reward_gradient_matches_finite_differences(study_data, mode):
    """d reward / d memory of the real LLM-LTM path, in float64, against central differences."""
    cfg = tiny_study_config()
    model = build_llmltm(cfg.lm, study_data.tokenizer, seed=2)
    with torch.no_grad():
        for r in model.readers:
            torch.nn.init.normal_(r.o.weight, std=0.3)
    backend = MemoryLMBackend(model.double(), study_data.splits, study_data.tokenizer, device="cpu")
    env = make(backend, reward_mode=mode)
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    m0 = torch.from_numpy(rng.uniform(-0.8, 0.8, (1, *env.action_space.shape)))
    lengths = torch.tensor([[3, 9, 17, 32]]) if mode == "prefix_sampled" else None
    memory = m0.clone().requires_grad_(True)
    env.differentiable_reward(memory, lengths).sum().backward()
    eps = 1e-6
    for _ in range(3):
        v = torch.from_numpy(rng.standard_normal(m0.shape))
        with torch.no_grad():
            up = float(env.differentiable_reward(m0 + eps * v, lengths)[0])
            down = float(env.differentiable_reward(m0 - eps * v, lengths)[0])
        numeric = (up - down) / (2 * eps)
        analytic = float((memory.grad * v).sum())
        assert abs(numeric - analytic) <= 1e-6 + 1e-5 * abs(analytic), (numeric, analytic)
    assert memory.grad.abs().sum() > 0


def test_adapters_from_a_file_and_a_missing_file_is_named(tmp_path):
    from ltm_gym.envs.backend import MemoryLMBackend as Backend

    cfg = tmp_path / "study" / "config.yaml"
    cfg.parent.mkdir()
    cfg.write_text(yaml.safe_dump(to_dict(tiny_study_config())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = Backend.from_study(tmp_path / "study", adapters="none", device="cpu", untrained=True)
        with torch.no_grad():
            first.model.readers[0].o.weight.fill_(0.25)
        first.model.save_adapters(tmp_path / "reader.safetensors")
        second = Backend.from_study(tmp_path / "study", adapters=str(tmp_path / "reader.safetensors"), device="cpu",
                                   untrained=True)
        assert torch.equal(second.model.readers[0].o.weight, first.model.readers[0].o.weight)
        with pytest.raises(FileNotFoundError, match="nope.safetensors"):
            Backend.from_study(tmp_path / "study", adapters=str(tmp_path / "nope.safetensors"), device="cpu",
                               untrained=True)


def test_a_directory_without_a_study_is_an_error_naming_it(tmp_path):
    from ltm_gym.study import StudyNotFoundError

    missing = tmp_path / "typo"
    with pytest.raises(StudyNotFoundError, match=str(missing)):
        gym.make("ltm_gym/LLMMemory-v0", study_dir=missing)
    assert not missing.exists()                                # nothing created at the typo'd path
    cfg = tmp_path / "study" / "config.yaml"
    cfg.parent.mkdir()
    cfg.write_text(yaml.safe_dump(to_dict(tiny_study_config())))
    with pytest.raises(StudyNotFoundError, match="lm is missing"):
        gym.make("ltm_gym/LLMMemory-v0", study_dir=tmp_path / "study")


def test_mimic_reward_with_hidden_observations_is_the_distance_change(backend):
    env = LLMMemoryEnv(backend=backend, reward_mode="mimic", obs_mode="hidden")
    env.reset(seed=0)
    env.action_space.seed(1)
    before = float(env.unwrapped.episodes.distance[0])
    obs, reward, *_, info = env.step(env.action_space.sample())
    assert reward == pytest.approx(before - info["mimic_distance"], abs=1e-5)   # not the LM's loss
    assert "ce" in info and obs["hidden"].shape == env.observation_space["hidden"].shape
