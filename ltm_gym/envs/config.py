"""The env's one config: every argument of ``LLMMemory-v0`` (single and vector env alike).

``gymnasium.make``, ``gymnasium.make_vec``, the scripts' ``--env-kwargs`` and Python code all pass
keyword arguments through :func:`env_config`, the one loader: an unknown name is refused with the
closest known one, a value of the wrong type or out of range names the argument, the value and
what it takes, and nothing is built before the whole config is valid.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from ltm_gym.core import ConfigError, check, from_dict
from ltm_gym.data.babilong import BabiTaskConfig
from ltm_gym.data.tasks import TaskConfig

from .reward import RewardConfig

ACTION_MODES = ("full", "slot", "select")
OBS_MODES = ("tokens", "hidden")


@dataclass
class EnvConfig:
    """What an LLMMemory env is: its study, its task and the agent's interface to them."""

    study_dir: Path | None = None
    """A study written by ``ltm-gym pretrain-lm`` or ``make demo``, or the name of a shipped one
    (default: the default study, ``$LTM_GYM_STUDY_DIR`` or ``~/.cache/ltm_gym/study-tiny``)."""
    config: str | None = None
    """The study's config (a preset name or YAML path; default: the study's own)."""
    adapters: str = "memory"
    """The reader: ``memory`` | ``select`` | ``lora`` | ``none`` | a .safetensors file."""
    task: str | dict[str, Any] | TaskConfig | BabiTaskConfig | None = None
    """Which documents the env draws (:mod:`ltm_gym.data.tasks`): None (the study's own corpus), a
    level name (``recall-d4``, ``babi-qa1-4k``) or a dict of task fields (``{"name": "recall-d4",
    "distance": 3}``, ``{"name": "babi-qa1-4k", "tokens": 3000, "seed": 7}``)."""
    split: str = "train"
    """``train`` | ``validation`` | ``test``."""
    reward_mode: Literal["prefix", "prefix_sampled", "full", "answer", "delta", "gain", "mimic"] = "prefix"
    """``prefix``: the study's prefix reward in exact expectation over prefix lengths;
    ``prefix_sampled``: the study's k random prefixes; ``gain``: per-token loss changes above
    ``gain_threshold`` (:mod:`ltm_gym.envs.reward`)."""
    k: int = 4
    """Random prefixes per reward (``prefix_sampled``)."""
    gain_threshold: float = 1.0
    """Nats a token's loss must change by to count in ``reward_mode=gain``."""
    action_mode: Literal["full", "slot", "select"] = "full"
    """full: Box(-1, 1, (n_slots, slot_dim)) is the new memory; slot: one slot, the first number
    picks it; select: scores of the segment's positions and of the previous slots, the top n_slots
    stored (:mod:`ltm_gym.envs.selection`)."""
    spacing: int = 0
    """Select mode: the kept candidates are taken best first, and a segment position taken rules out
    the positions within ``spacing`` of it (0: any). The study's ``memory.code_context`` keeps
    the windows that the slots spell from overlapping, so that no fact takes two slots."""
    action_scale: float = 1.0
    """Memory values are ``action_scale * action``."""
    obs_mode: Literal["tokens", "hidden"] = "tokens"
    max_segments: int | None = None
    """Truncate an episode after this many steps (None: the whole document)."""
    device: str = "auto"
    render_mode: Literal["ansi"] | None = None
    untrained: bool = False
    """The config's LM untrained where the study has none (smoke tests only)."""
    lm_update: bool = False
    """Co-train the reader online (the study's interaction scheme). Not part of the simulator:
    ``gymnasium.make`` wraps the env in :class:`~ltm_gym.envs.reader_training.CoTrainReader`."""
    lm_lr: float = 1e-4
    """The co-trained reader's AdamW learning rate (with ``lm_update``)."""
    lm_loss: Literal["auto", "tokens", "answers"] = "auto"
    """What the co-trained reader is stepped on (with ``lm_update``): every token's loss, the answer
    tokens' alone, or ``auto``: answers where the study trained its reader on them
    (:data:`~ltm_gym.envs.reader_training.LM_LOSSES`)."""

    def validate(self) -> None:
        check(self.k >= 1, "k", self.k, ">= 1")
        check(self.gain_threshold >= 0, "gain_threshold", self.gain_threshold, ">= 0")
        check(self.spacing >= 0, "spacing", self.spacing, ">= 0 (0: kept positions may be neighbours)")
        check(self.spacing == 0 or self.action_mode == "select", "spacing", self.spacing,
              f"0 with action_mode {self.action_mode!r} (it spaces a selection's positions)")
        check(self.action_scale > 0, "action_scale", self.action_scale, "> 0")
        check(self.max_segments is None or self.max_segments >= 1, "max_segments", self.max_segments, ">= 1 or null")
        check(self.lm_lr > 0, "lm_lr", self.lm_lr, "> 0")

    @property
    def reward(self) -> RewardConfig:
        return RewardConfig(mode=self.reward_mode, k=self.k, gain_threshold=self.gain_threshold)


FIELDS = tuple(f.name for f in dataclasses.fields(EnvConfig))


def env_config(kwargs: Mapping[str, Any] | None = None, base: EnvConfig | None = None) -> EnvConfig:
    """An :class:`EnvConfig` from keyword arguments (over ``base`` when given), type-checked and
    validated. Unknown names are refused with the closest known one."""
    kwargs = dict(kwargs or {})
    for name in kwargs:
        if name not in FIELDS:
            near = difflib.get_close_matches(name, FIELDS, n=1)
            hint = f"did you mean {near[0]!r}?" if near else "known: " + ", ".join(FIELDS)
            raise ConfigError(f"env argument {name!r} is not one of LLMMemory-v0's ({hint})")
    if base is not None:
        kwargs = {**{f: getattr(base, f) for f in FIELDS}, **kwargs}
    try:
        return from_dict(EnvConfig, kwargs)
    except ConfigError as err:
        raise ConfigError(str(err).replace("config key", "env argument", 1)) from None
