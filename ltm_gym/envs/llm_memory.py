"""``ltm_gym/LLMMemory-v0``: an agent writes the long-term memory of a language model."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ltm_gym.core import ConfigError

from .backend import MemoryLMBackend
from .config import EnvConfig, env_config
from .episodes import DifferentiableReward, Episodes
from ltm_gym.core.errors import UserError


def build_backend(cfg: EnvConfig, backend: MemoryLMBackend | None) -> MemoryLMBackend:
    """The backend an env of ``cfg`` steps: ``backend`` (shared, on ``cfg.task``'s documents) or
    the one ``cfg``'s study loads. Co-training is refused here: the env is a simulator."""
    if cfg.lm_update:
        raise ConfigError("lm_update=True trains the reader, which the env itself never does: use "
                          "gymnasium.make(..., lm_update=True) / make_vec, which wrap the env in "
                          "ltm_gym.envs.CoTrainReader, or wrap it yourself")
    if backend is not None:
        return backend.with_task(cfg.task)
    return MemoryLMBackend.from_study(cfg.study_dir, cfg.config, cfg.adapters, cfg.device, untrained=cfg.untrained,
                                      task=cfg.task)


class LLMMemoryEnv(DifferentiableReward, gym.Env):
    """
    ## Description
    A memory agent reads a text segment and its previous memory and writes a new memory of
    ``n_slots`` vectors of dimension ``slot_dim`` (10 x 64 in the study). A language model adapted
    with LoRA (the LLM-LTM) reads that memory, through cross-attention in its last blocks or as soft
    prefix tokens, while it predicts the next segment. The reward is how well it predicts it.
    One episode is one document cut into segments s_0, ..., s_{n-1}.

    ## Action Space
    ``Box(-1, 1, (n_slots, slot_dim), float32)``: the new memory, scaled by ``action_scale``.
    With ``action_mode="slot"`` (the original study's agent): ``Box(-1, 1, (slot_dim + 1,))``, whose
    first number picks a slot (``n_slots`` equal bins of [-1, 1]) and the rest overwrites it.
    With ``action_mode="select"``: ``Box(-1, 1, (segment_len + n_slots,))``, a score per position of
    the current segment and per slot of the previous memory; the ``n_slots`` best are stored, a
    position as a fixed code of its token and the token before it (the LM's input embeddings through
    a fixed seeded projection, max-normalized to [-1, 1]), a previous slot unchanged ("keep"), see
    :mod:`ltm_gym.envs.selection`. The select-mode observation also carries ``"codes"``,
    ``Box(-action_scale, action_scale, (segment_len, slot_dim))``: what each position of the segment
    would be stored as, so a policy can tell which slot holds a fact the segment asks again (and
    may now be dropped). ``score_actions(candidates)`` returns the rewards of K candidate
    actions for the current state from one batched LM forward, without advancing the env.
    Actions of the wrong shape or dtype, NaN, inf or outside [-1, 1] raise ``ValueError`` and leave
    the env exactly as it was.

    ## Observation Space
    ``Dict(tokens=Box(0, vocab - 1, (segment_len,), int64), memory=Box(-s, s, (n_slots, slot_dim), float32))``:
    the current segment's token ids and the memory written at the previous step (zeros at reset).
    With ``obs_mode="hidden"``, ``tokens`` is replaced by ``hidden``: the LM's final hidden states
    over the current segment, mean-pooled, while it reads the current memory (for MLP policies).
    With ``action_mode="select"`` also ``codes`` (see the action space).

    ## Rewards
    After the write, on the next segment (the memory of THIS action is scored):
    * ``prefix`` (default, the study's reward): R_t = -E_l L(s_{t+1}[0:l] | m_t), l uniform in
      [1, segment_len], exact (a fixed per-token weighting); ``prefix_sampled``: the study's k random
      prefixes, R_t = -(1/k) sum_i L(s_{t+1}[0:l_i] | m_t), all from one LM forward;
    * ``full``: minus the cross-entropy of s_{t+1}; ``answer``: minus the cross-entropy of its answer
      tokens (synthetic recall corpus); ``delta``: CE without memory minus CE with it; ``gain``: the
      per-token loss changes that memory causes, soft-thresholded at ``gain_threshold`` nats, summed;
    * ``mimic``: d_{t-1} - d_t with d_t = sum_i min_j ||A m_{t,i} - emb_j|| (hypothesis 1, see
      ``ltm_gym/EmbeddingMimic-v0``).
    ``info`` carries ``ce``, ``ppl``, ``top5`` ... ``top100`` of the next segment, ``answer_ce`` and
    ``recall_acc`` where it has answer tokens, ``prefix_lengths``, ``document`` and ``segment``; on
    task documents also, per answer token, ``answer_distance`` (segments since its fact was stated)
    and ``answer_hit`` (recalled exactly), and in select mode ``answer_held`` (the memory just
    written holds the fact's own code: the share of facts still held when asked). ``reset`` and
    ``step`` infos on task documents carry ``fact_due`` of the current segment: at each stated
    fact's VALUE the segment that will ask it (-1: never asked), 0 elsewhere (privileged: for the
    scripted reference policies of :mod:`ltm_gym.baselines.scripted_memory`).

    ## Starting State
    A document drawn with ``self.np_random`` from the split (or ``options={"document": i}``),
    its first segment, and an all-zero memory.

    ## Episode End
    Terminated after the reward of the document's last segment (n - 1 steps); truncated after
    ``max_segments`` steps.

    ## Arguments
    * ``task``: which documents the env draws (:mod:`ltm_gym.data.tasks`): None (the study's own
      corpus), a level of the memory ladder (``recall-d1``, ``recall-d2``, ``recall-d4``,
      ``recall-d8``, ``recall-mixed``: facts asked 1..8 segments later), or a dict of task fields
      overriding one (``{"name": "recall-d4", "distance": 3}``). The study is not rebuilt.
    * ``study_dir``: a study written by ``scripts/pretrain_lm.py`` or ``make demo`` (default: the
      default study, ``$LTM_GYM_STUDY_DIR`` or ``~/.cache/ltm_gym/study-tiny``, see
      :mod:`ltm_gym.study.layout`); a directory without a study is an error naming it.
      ``config``: its config (default: the study's own); ``adapters``: ``memory`` | ``lora`` |
      ``none`` | a .safetensors file (e.g. the reader trained with a differentiable writer,
      baselines/bptt_memory.py). ``untrained=True``: the config's LM untrained where the study has
      none (smoke tests only: its reward means nothing).
    * ``backend``: a ready :class:`MemoryLMBackend` (shared by several envs, never copied).
    * ``split``: ``train`` | ``validation`` | ``test``.
    Every argument is a field of :class:`~ltm_gym.envs.config.EnvConfig` (pass one as ``config``,
    keyword arguments override it); unknown names and bad values are refused before anything loads.
    * ``reward_mode``, ``k``, ``action_mode``, ``action_scale``, ``obs_mode``, ``max_segments`` as above.
    * ``lm_update``: co-train the reader (the study's interaction scheme): not the simulator's job;
      ``gymnasium.make`` returns the env wrapped in :class:`~ltm_gym.envs.reader_training.CoTrainReader`
      (one AdamW step, ``lm_lr``, on the LM loss of what each step scored, memory detached).
    * ``device``: auto | cpu | cuda; ``render_mode``: None | ``ansi``.

    ## Vectorized environment
    ``gymnasium.make_vec("ltm_gym/LLMMemory-v0", num_envs=N, vectorization_mode="vector_entry_point")``
    builds :class:`~ltm_gym.envs.vector.LLMMemoryVectorEnv`: N documents stepped with ONE batched
    LM forward per step, same spaces and rewards, autoreset mode SAME_STEP. For Stable-Baselines3
    wrap it with :class:`~ltm_gym.envs.sb3_vec.SB3VecEnv`.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, config: EnvConfig | None = None, *, backend: MemoryLMBackend | None = None,
                 **kwargs: Any) -> None:
        self.config = cfg = env_config(kwargs, config or EnvConfig())
        self.render_mode = cfg.render_mode
        self.backend = build_backend(cfg, backend)
        self.episodes = Episodes(self.backend, cfg, 1)
        self.observation_space, self.action_space = self.episodes.obs_space, self.episodes.act_space
        self._needs_reset = True
        self._closed = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._check_open()
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"document"}
        if unknown:
            raise UserError(f"unknown reset options {sorted(unknown)}; allowed: ['document']")
        self.episodes.reset_one(0, self.np_random, options.get("document"))
        self._needs_reset = False
        info: dict[str, Any] = {"document": int(self.episodes.doc[0]), "segment": 0}
        due = self.episodes.fact_due(0)
        if due is not None:
            info["fact_due"] = due
        return self.episodes.observation(0), info

    def step(self, action: np.ndarray):
        self._check_open()
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        batched = action[None] if hasattr(action, "shape") else np.asarray(action)[None]
        rewards, terminated, truncated, infos = self.episodes.step(batched, [self.np_random])
        done = bool(terminated[0]) or bool(truncated[0])
        self._needs_reset = done
        return self.episodes.observation(0), float(rewards[0]), bool(terminated[0]), bool(truncated[0]), infos[0]

    def close(self) -> None:
        self._closed = True
        super().close()

    def _scoring_rngs(self) -> list[np.random.Generator]:
        return [self.np_random]

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.episodes.render_text(0)
        return None
