"""The episode logic of N memory-writing episodes, stepped together.

The single env is N = 1 of this, the vector env N > 1: both step through :meth:`Episodes.step`,
so they cannot disagree. Episode: one document; the observation at step t is segment s_t and the
memory m_{t-1}; the action writes m_t; the reward is computed AFTER the write, on s_{t+1}; the
episode terminates after the reward of the document's last segment, or is truncated after
``max_segments`` steps.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import VectorEnv

from ltm_gym.lm import tokens_before

from .backend import MemoryLMBackend
from .config import EnvConfig
from .reward import Reward, Segments
from .selection import candidate_slots, held_codes, segment_codes, supporting_held, write_selection
from ltm_gym.core.errors import UserError


def make_spaces(backend: MemoryLMBackend, s: EnvConfig) -> tuple[spaces.Dict, spaces.Box]:
    """Observation and action space of ONE env."""
    m, d = backend.n_slots, backend.slot_dim
    memory = spaces.Box(-s.action_scale, s.action_scale, (m, d), np.float32)
    if s.obs_mode == "tokens":
        seg = spaces.Box(0, backend.vocab_size - 1, (backend.segment_len,), np.int64)
        obs = spaces.Dict({"tokens": seg, "memory": memory})
    else:
        bound = backend.model.hidden_bound()
        obs = spaces.Dict({"hidden": spaces.Box(-bound, bound, (backend.model.hidden,), np.float32),
                           "memory": memory})
    if s.action_mode == "select":   # what each segment position would be stored as: the candidates' contents
        obs = spaces.Dict({**obs.spaces, "codes": spaces.Box(-s.action_scale, s.action_scale,
                                                             (backend.segment_len, d), np.float32)})
    shape = {"full": (m, d), "slot": (d + 1,), "select": (backend.segment_len + m,)}[s.action_mode]
    return obs, spaces.Box(-1.0, 1.0, shape, np.float32)


def pool(hidden: torch.Tensor) -> np.ndarray:
    """The ``hidden`` observation: final hidden states (N, L, H) mean-pooled over the segment."""
    return hidden.float().mean(1).cpu().numpy()


def write_memory(memory: np.ndarray, actions: np.ndarray, action_mode: str, scale: float) -> np.ndarray:
    """The memories (N, m, d) that actions write: ``full`` replaces all of it, ``slot`` overwrites
    the slot picked by the action's first number (n_slots equal bins of [-1, 1]) with the rest."""
    actions = np.clip(actions, -1, 1)
    if action_mode == "full":
        return (actions * scale).astype(np.float32)
    m = memory.shape[1]
    slot = np.minimum(((actions[:, 0] + 1) / 2 * m).astype(np.int64), m - 1)
    new = memory.copy()
    new[np.arange(len(actions)), slot] = actions[:, 1:] * scale
    return new


class Episodes:
    """State of N episodes (document, segment index, memory, steps) and their batched step."""

    def __init__(self, backend: MemoryLMBackend, settings: EnvConfig, n: int) -> None:
        backend.docs(settings.split)                    # an unknown or empty split fails here, not at reset
        self.backend, self.s, self.n = backend, settings, n
        self.reward = Reward(backend, settings.reward)
        self.obs_space, self.act_space = make_spaces(backend, settings)
        self.doc = np.zeros(n, dtype=np.int64)
        self.t = np.zeros(n, dtype=np.int64)
        self.steps = np.zeros(n, dtype=np.int64)
        self.memory = np.zeros((n, backend.n_slots, backend.slot_dim), dtype=np.float32)
        self.hidden = np.zeros((n, backend.model.hidden), dtype=np.float32)
        self.last_reward = np.zeros(n, dtype=np.float64)
        self.distance = np.zeros(n, dtype=np.float64)
        self.last_scored: tuple[torch.Tensor, Segments] | None = None
        """The memories (n, m, d) the last step wrote and the next segments its reward scored them
        on: what a learner that trains the reader online (:mod:`ltm_gym.envs.reader_training`) reads."""

    @property
    def docs(self):
        return self.backend.docs(self.s.split)

    STATE = ("doc", "t", "steps", "memory", "hidden", "last_reward", "distance")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Where every episode is (copies): with the env's generators, all a resumed run needs."""
        return {k: getattr(self, k).copy() for k in self.STATE}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for k in self.STATE:
            if state[k].shape != getattr(self, k).shape:
                raise UserError(f"episode state {k!r} has shape {state[k].shape}; this env has {getattr(self, k).shape}")
            setattr(self, k, state[k].copy())

    # ------------------------------------------------------------------ validation
    def check_actions(self, actions: Any) -> np.ndarray:
        """(n, *action_shape) float32 copy of valid actions, or a ValueError naming the problem."""
        shape = (self.n, *self.act_space.shape)
        if not isinstance(actions, (np.ndarray, torch.Tensor)):
            actions = np.asarray(actions)
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        if actions.dtype.kind != "f":
            raise UserError(f"action dtype is {actions.dtype}; expected a float array (float32)")
        if actions.shape != shape:
            raise UserError(f"action shape is {actions.shape}; expected {shape}")
        bad = ~np.isfinite(actions)
        if bad.any():
            kind = "NaN" if np.isnan(actions).any() else "inf"
            raise UserError(f"action holds {int(bad.sum())} non-finite values ({kind}); the env state is unchanged")
        worst = float(np.abs(actions).max()) if actions.size else 0.0
        if worst > 1.0 + 1e-6:
            raise UserError(f"action value {worst:.4g} is outside the action space [-1, 1]; clip or squash it")
        return actions.astype(np.float32, copy=True)

    def current_segments(self) -> torch.Tensor:
        """Token ids (n, L) of every env's current segment s_t."""
        return torch.stack([self.docs[d].ids[t] for d, t in zip(self.doc, self.t)])

    def preceding(self, offset: int = 0, envs: list[int] | None = None) -> torch.Tensor:
        """(n, c): the tokens right before each env's segment s_{t + offset} (BOS at the document's
        start), which the windows of its first positions reach into (:func:`tokens_before`)."""
        model = self.backend.model
        envs = range(self.n) if envs is None else envs
        return torch.cat([tokens_before(self.docs[self.doc[i]].ids, [int(self.t[i]) + offset],
                                        model.mem_cfg.code_context, model.bos_token_id) for i in envs])

    def written_memory(self, actions: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
        """The memories (n, m, d) that valid ``actions`` write (the env does not change); in select
        mode from ``candidates`` (:func:`candidate_slots`, computed here when not given)."""
        if self.s.action_mode == "select":
            if candidates is None:
                candidates = candidate_slots(self.backend.model, self.memory, self.current_segments(), self.s.action_scale,
                                             self.preceding())
            return write_selection(candidates, actions, self.memory.shape[1], self.s.spacing)
        return write_memory(self.memory, actions, self.s.action_mode, self.s.action_scale)

    def score_actions(self, actions: Any, rngs: list[np.random.Generator]) -> np.ndarray:
        """Rewards (K, n) of K candidate actions (K, n, *action_shape) for the current states, from
        ONE batched reward call (:meth:`Reward.candidates`: the memory-free trunk once for all K),
        without advancing the episodes: what ``step`` would return for each (prefix lengths drawn
        from copies of ``rngs``, so the next step draws the same)."""
        if not isinstance(actions, (np.ndarray, torch.Tensor)):
            actions = np.asarray(actions)
        if actions.ndim < 1 or len(actions) < 1:
            raise UserError(f"candidate actions have shape {tuple(actions.shape)}; expected (K, {self.n}, ...)")
        candidates = None
        if self.s.action_mode == "select":  # the codes of the current segments, once for all K
            candidates = candidate_slots(self.backend.model, self.memory, self.current_segments(), self.s.action_scale,
                                         self.preceding())
        memories = np.stack([self.written_memory(self.check_actions(a), candidates) for a in actions])  # (K, n, m, d)
        seg = self.next_segments(self.reward.draw_lengths([copy.deepcopy(r) for r in rngs]))
        with torch.no_grad():
            rewards = self.reward.candidates(torch.from_numpy(memories), seg)
        return rewards.double().cpu().numpy()

    # ------------------------------------------------------------------ reset / observation
    def reset_one(self, i: int, rng: np.random.Generator, document: int | None) -> None:
        docs = self.docs
        if document is None:
            document = int(rng.integers(len(docs)))
        elif not 0 <= document < len(docs):
            raise UserError(f"document={document} is out of range: split {self.s.split!r} has {len(docs)} documents")
        self.doc[i], self.t[i], self.steps[i] = document, 0, 0
        self.memory[i] = 0.0
        self.last_reward[i] = 0.0
        zero = torch.from_numpy(self.memory[i : i + 1])
        if self.s.reward.mode == "mimic":
            self.distance[i] = float(self.reward.distance(zero)[0])
        if self.s.obs_mode == "hidden":
            with torch.no_grad():
                _, _, hidden = self.backend.model(docs[document].ids[0][None].to(self.backend.device),
                                                  zero.to(self.backend.device), return_hidden=True)
            self.hidden[i] = pool(hidden)[0]

    def observation(self, i: int) -> dict[str, np.ndarray]:
        """Fresh arrays for env i (never views of internal state)."""
        if self.s.obs_mode == "tokens":
            first = {"tokens": self.docs[self.doc[i]].ids[self.t[i]].numpy().astype(np.int64, copy=True)}
        else:
            first = {"hidden": self.hidden[i].copy()}
        obs = {**first, "memory": self.memory[i].copy()}
        if self.s.action_mode == "select":
            obs["codes"] = segment_codes(self.backend.model, self.docs[self.doc[i]].ids[self.t[i]][None],
                                         self.s.action_scale, self.preceding(envs=[i]))[0]
        return obs

    # ------------------------------------------------------------------ the reward
    def next_segments(self, lengths: torch.Tensor | None = None) -> Segments:
        """Every env's next segment s_{t+1}, as the reward scores it."""
        docs, nxt = self.docs, self.t + 1
        return Segments(ids=torch.stack([docs[d].ids[t] for d, t in zip(self.doc, nxt)]),
                        answer_mask=torch.stack([docs[d].answer_mask[t] for d, t in zip(self.doc, nxt)]),
                        answer_distance=self.answer_distances(nxt),
                        keys=[(int(d), int(t), self.s.split) for d, t in zip(self.doc, nxt)],
                        lengths=lengths, prev_distance=torch.from_numpy(self.distance))

    def answer_distances(self, t: np.ndarray) -> torch.Tensor | None:
        """The fact distance of every token of segments ``t`` (n, L), where the documents have one."""
        docs = [self.docs[d] for d in self.doc]
        if any(doc.answer_distance is None for doc in docs):
            return None
        return torch.stack([doc.answer_distance[i] for doc, i in zip(docs, t)])

    def check_memory(self, memory: torch.Tensor, leading: tuple[int, ...]) -> None:
        want = (*leading, self.backend.n_slots, self.backend.slot_dim)
        if tuple(memory.shape) != want:
            raise UserError(f"memory shape is {tuple(memory.shape)}; expected {want}")

    def differentiable_reward(self, memory: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The reward ``step`` would give for writing ``memory`` (n, m, d) now, with its graph."""
        self.check_memory(memory, (self.n,))
        return self.reward(memory, self.next_segments(lengths), grad=True)["reward"]

    def step(self, actions: Any, rngs: list[np.random.Generator]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """Validate, write, reward on the next segments (one call of the reward), advance. Env i
        draws its prefix lengths from ``rngs[i]``.

        Returns rewards (n,), terminated (n,), truncated (n,), infos. Nothing changes if the
        actions are invalid.
        """
        actions = self.check_actions(actions)
        memory = self.written_memory(actions)
        b, hidden_obs = self.backend, self.s.obs_mode == "hidden"
        seg = self.next_segments(self.reward.draw_lengths(rngs))
        terms = self.reward(torch.from_numpy(memory), seg, want_hidden=hidden_obs)
        rewards = terms["reward"].detach().double().cpu().numpy()
        infos: list[dict] = [{} for _ in range(self.n)]
        if "losses" in terms:
            for info, metrics in zip(infos, b.segment_metrics(terms["logits"], seg.ids, terms["losses"], seg.answer_mask,
                                                              seg.answer_distance)):
                info.update(metrics)
            if self.s.action_mode == "select" and seg.answer_distance is not None:
                self.add_held(infos, memory, seg)
        if "distance" in terms:
            self.distance = terms["distance"].detach().double().cpu().numpy()
            for i in range(self.n):
                infos[i]["mimic_distance"] = float(self.distance[i])
        if seg.lengths is not None:
            for i in range(self.n):
                infos[i]["prefix_lengths"] = seg.lengths[i].numpy().copy()
        self.last_scored = (torch.from_numpy(memory), seg)
        if hidden_obs:  # the next observation's hidden states come from the reward's own forward
            self.hidden = pool(terms["hidden"])
        self.memory = memory
        self.t = self.t + 1
        self.steps += 1
        self.last_reward = rewards.copy()
        n_seg = np.array([self.docs[d].n_segments for d in self.doc])
        terminated = self.t >= n_seg - 1
        limit = self.s.max_segments
        truncated = ~terminated & (self.steps >= limit) if limit else np.zeros(self.n, dtype=bool)
        for i in range(self.n):
            infos[i].update({"document": int(self.doc[i]), "segment": int(self.t[i])})
            due = self.fact_due(i)
            if due is not None:
                infos[i]["fact_due"] = due
        return rewards, terminated, truncated, infos

    def add_held(self, infos: list[dict], memory: np.ndarray, seg: Segments) -> None:
        """``answer_held`` per answer token: whether the memory just written holds its fact (the
        fact's own code; on bAbI-in-books documents every supporting fact, by any code whose window
        spans it, :func:`supporting_held`)."""
        held = None
        for i, info in enumerate(infos):
            if "answer_hit" not in info:
                continue
            doc, t = self.docs[self.doc[i]], int(self.t[i]) + 1
            if doc.oracle is None and held is None:     # the recall corpus: one pass for every row
                held = held_codes(self.backend.model, memory, seg.ids, self.s.action_scale, self.preceding(1))
            if doc.oracle is not None:
                ok = supporting_held(self.backend.model, memory[i], doc.ids, doc.fact_due, t, self.s.action_scale,
                                     doc.subject_source)
                if ok is not None:
                    info["answer_held"] = [ok] * len(info["answer_hit"])
            else:
                info["answer_held"] = held[i][seg.answer_mask[i].numpy()].tolist()

    def fact_due(self, i: int) -> np.ndarray | None:
        """(L,) for env i's current segment (task documents): at each stated fact's VALUE the
        segment that asks it (-1: never), 0 elsewhere. What scripted reference policies read."""
        due = self.docs[self.doc[i]].fact_due
        return None if due is None else due[self.t[i]].numpy().astype(np.int64)

    def render_text(self, i: int) -> str:
        """The ansi rendering of env i: segment text, memory statistics, last reward."""
        ids = self.docs[self.doc[i]].ids[self.t[i]]
        tok = self.backend.tokenizer
        text = tok.decode(ids.tolist()) if tok is not None else " ".join(map(str, ids.tolist()))
        m = self.memory[i]
        norms = np.linalg.norm(m, axis=1)
        return (f"document {self.doc[i]}  segment {self.t[i]}  step {self.steps[i]}  last reward {self.last_reward[i]:+.4f}\n"
                f"segment: {text.strip()}\n"
                f"memory: mean {m.mean():+.3f} std {m.std():.3f} min {m.min():+.3f} max {m.max():+.3f}  "
                f"slot norms [{' '.join(f'{x:.2f}' for x in norms)}]\n")


class DifferentiableReward:
    """The reward paths beside ``step`` of the single and the vector env (both hold ``episodes``):
    the differentiable reward and batched scoring of candidate actions."""

    episodes: Episodes
    _needs_reset: bool
    _closed: bool = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed; make a new env")

    def differentiable_reward(self, memory: torch.Tensor, prefix_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The reward ``step`` would give for writing ``memory`` (num_envs, n_slots, slot_dim) now,
        as a tensor with gradients back to ``memory`` (the pathwise gradient a differentiable
        writer trains on). ``prefix_lengths`` (num_envs, k) is needed in prefix mode. The env does
        not advance."""
        self._check_open()
        if self._needs_reset:
            raise RuntimeError("call reset() before differentiable_reward()")
        return self.episodes.differentiable_reward(memory, prefix_lengths)

    def score_actions(self, actions: np.ndarray) -> np.ndarray:
        """Rewards of K candidate actions for the current state(s) from one batched LM forward,
        without advancing the env: (K, *action_shape) -> (K,) for the single env, (K, num_envs,
        *action_shape) -> (K, num_envs) for the vector env. Each equals what ``step`` would return
        for that action now (in prefix mode with the prefix lengths the next step will draw).
        The candidates of group-sampled policy gradients (a leave-one-out baseline) come from here."""
        self._check_open()
        if self._needs_reset:
            raise RuntimeError("call reset() before score_actions()")
        single = not isinstance(self, VectorEnv)
        actions = np.asarray(actions)
        scores = self.episodes.score_actions(actions[:, None] if single else actions, self._scoring_rngs())
        return scores[:, 0] if single else scores
