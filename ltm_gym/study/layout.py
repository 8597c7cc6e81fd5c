"""A study directory: the one place that knows where a study's artifacts live.

::

    STUDY_DIR/
      config.yaml                   the study's resolved StudyConfig
      cache/                        the synthetic tokenizer (keyed by the corpus config)
      lm/                           the pre-trained tiny LM and its tokenizer (HF format)
      lora_baseline.safetensors     LoRA adapters of the no-memory baseline  (adapters "lora")
      memory_lm.safetensors         LoRA + memory read path, hypothesis 2     (adapters "memory")
      select_lm.safetensors         LoRA + read path for selection memory     (adapters "select")
      stages/<stage>/               each LM stage's checkpoint, metrics.jsonl, tb/
      agents/<run>/ bptt/           the pipeline's agent runs and differentiable writer
      eval/ plots/                  tables (CSV, JSON) and figures

The default study is ``$LTM_GYM_STUDY_DIR`` when set, else ``study-tiny`` under the user's cache
(``$XDG_CACHE_HOME/ltm_gym``, ``~/.cache/ltm_gym``): ``make demo`` writes it there, and
``gymnasium.make("ltm_gym/LLMMemory-v0")`` reads it from there, whatever the current directory.
The package ships the default study's LM stages (``ltm_gym/default_study``: config, tokenizer, LM,
adapters and the reference rows they were checked against, built by ``ltm-gym ship-study``): the
default study directory, when it holds no study yet, starts as a copy of it, so an installed
package has a study without pre-training one (``shipped=False`` or ``--from-scratch`` rebuilds it).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from functools import cached_property
from pathlib import Path
from typing import Any

from ltm_gym.core import ConfigError, config_changes, save_config, to_dict
from ltm_gym.core.keyed import Keyed
from ltm_gym.data.corpus import build_corpus, load_tokenizer
from ltm_gym.data.segments import Document
from ltm_gym.lm import LLMLTM, build_llmltm

from .config import StudyConfig, load_study_config
from ltm_gym.core.errors import UserError

ENV_VAR = "LTM_GYM_STUDY_DIR"
ADAPTER_FILES = {"lora": "lora_baseline.safetensors", "memory": "memory_lm.safetensors",
                 "select": "select_lm.safetensors"}


SHIPPED_DIR = Path(__file__).resolve().parents[1] / "default_study"


def shipped_files(adapter_files: list[str]) -> tuple[str, ...]:
    """What a shipped study with these adapter files holds: config, tokenizer cache, LM, and each
    adapter with the record of its training."""
    return ("config.yaml", "cache", "lm", *adapter_files, *(Path(f).with_suffix(".json").name for f in adapter_files))


SHIPPED_FILES = shipped_files(list(ADAPTER_FILES.values()))
"""Every file a shipped study may hold (one whose config has no stage of an adapter lacks it)."""
REFERENCE_FILE = "reference.json"
"""The shipped study's table rows (test split) as measured when it was built: a test recomputes them."""


SHIPPED_STUDIES = {"tiny": SHIPPED_DIR, **{name: SHIPPED_DIR.parent / "studies" / name
                                           for name in ("babi-tiny", "babi-spelled")}}
"""Studies shipped inside the package, by the preset they were built from: the default study, and
the others that ``study_dir=NAME`` names (copied to ``study-NAME`` beside the default study)."""


def shipped_study_dir(name: str = "tiny") -> Path | None:
    """The study of preset ``name`` shipped inside the package, or None when this install has none."""
    path = SHIPPED_STUDIES.get(name)
    return path if path is not None and (path / "config.yaml").is_file() else None


def default_study_dir(name: str = "tiny") -> Path:
    """``$LTM_GYM_STUDY_DIR``, else ``$XDG_CACHE_HOME/ltm_gym/study-tiny`` (``~/.cache/...``); for
    another shipped study ``name``, ``study-NAME`` in that cache."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    if name != "tiny":
        return cache / "ltm_gym" / f"study-{name}"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return cache / "ltm_gym" / "study-tiny"


def shipped_name(root: str | Path | None) -> str | None:
    """The shipped study a ``study_dir`` names (``babi-tiny``), when it is a bare name of one and
    no directory of that name is in the working directory."""
    if root is None or isinstance(root, Path) and len(root.parts) != 1:
        return None
    name = str(root)
    return name if name in SHIPPED_STUDIES and name != "tiny" and not Path(name).exists() else None


class StudyNotFoundError(FileNotFoundError):
    """A directory that should hold a study (or one of its artifacts) does not."""


def from_scratch_study(root: str | Path | None, config: str | Path | None = None,
                       overrides: list[str] | dict[str, Any] | None = None) -> "StudyDir":
    """A study whose LM stages will all be trained: not started from the shipped one. A directory
    that already holds a study is refused (its stages are done; nothing is deleted)."""
    study = StudyDir(root, config or "tiny", overrides, shipped=False)
    if study.exists():
        raise ConfigError(f"{study.root} already holds a study; --from-scratch builds one where there is none: "
                          "pass another --study-dir, or remove that one")
    return study


class StudyData:
    """The tokenizer and the split corpus of a study config, built once (:meth:`shared`: once per
    process, however many StudyDir objects, envs and agents ask for it). The corpus is built when
    first asked for: an env on a task draws the task's documents and never needs it."""

    def __init__(self, cfg: StudyConfig, cache_dir: str | Path) -> None:
        self.tokenizer = load_tokenizer(cfg.corpus, cache_dir)
        self._corpus = cfg.corpus

    @cached_property
    def splits(self) -> dict[str, list[Document]]:
        return build_corpus(self._corpus, self.tokenizer)

    @staticmethod
    def shared(cfg: StudyConfig, cache_dir: str | Path) -> "StudyData":
        """The process's one StudyData of ``cfg``'s corpus in ``cache_dir`` (documents are read-only)."""
        key = (json.dumps(to_dict(cfg.corpus), sort_keys=True), str(Path(cache_dir).resolve()))
        return _shared_data(Keyed(key, (cfg, cache_dir)))

    def documents(self, split: str) -> list[Document]:
        if split not in self.splits:
            raise UserError(f"split {split!r} is not one of {sorted(self.splits)}")
        return self.splits[split]


@functools.lru_cache(maxsize=4)
def _shared_data(args: Keyed[tuple[StudyConfig, str | Path]]) -> StudyData:
    return StudyData(*args.value)


class StudyDir:
    """The artifacts of one study. ``StudyDir()`` is the default study (see the module docstring)."""

    def __init__(self, root: str | Path | None = None, config: str | Path | StudyConfig | None = None,
                 overrides: list[str] | dict[str, Any] | None = None, shipped: bool = True) -> None:
        """``config``: the study's config when it differs from ``root/config.yaml`` (a preset name,
        a YAML path or a StudyConfig); ``overrides``: ``key=value`` changes on top of it.
        ``shipped``: the default study (``root`` None), when it holds no study yet, starts as a copy
        of the study shipped in the package if that one has the requested config."""
        named = shipped_name(root)
        self.root = default_study_dir(named or "tiny") if root is None or named else Path(root).expanduser()
        self._config_source = config
        self._overrides = overrides
        if (root is None or named) and shipped and not self.exists():
            self._copy_shipped(named or "tiny")

    def _copy_shipped(self, name: str) -> None:
        """Copy the shipped study's files into the (empty) study directory: first into a directory
        beside it, then renamed, so a concurrent reader never sees half a study."""
        source = shipped_study_dir(name)
        if source is None:
            return
        if self._config_source is not None or self._overrides:
            wanted = to_dict(self.config)
            if to_dict(load_study_config(source / "config.yaml")) != wanted:
                return
        self.root.parent.mkdir(parents=True, exist_ok=True)
        staging = self.root.parent / f".{self.root.name}.{os.getpid()}.shipped"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name in (*SHIPPED_FILES, REFERENCE_FILE):
            src = source / name
            if src.is_dir():
                shutil.copytree(src, staging / name)
            elif src.is_file():
                shutil.copy2(src, staging / name)
        try:
            if not self.root.exists():
                staging.rename(self.root)
                return
            # an empty directory (or one with a lock) already there: config.yaml, which marks a study, last
            for entry in sorted(staging.iterdir(), key=lambda e: e.name == "config.yaml"):
                target = self.root / entry.name
                if not target.exists():
                    entry.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def __repr__(self) -> str:
        return f"StudyDir({str(self.root)!r})"

    # .................................................................. the layout
    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def lm_dir(self) -> Path:
        return self.root / "lm"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    def stage_dir(self, stage: str) -> Path:
        return self.root / "stages" / stage

    def agent_dir(self, name: str) -> Path:
        return self.root / "agents" / name

    @property
    def bptt_dir(self) -> Path:
        return self.root / "bptt"

    def adapter_file(self, name: str) -> Path:
        if name not in ADAPTER_FILES:
            raise UserError(f"adapters {name!r} is not one of the study's: {', '.join(ADAPTER_FILES)}")
        return self.root / ADAPTER_FILES[name]

    def exists(self) -> bool:
        return self.config_file.is_file()

    def identity(self, adapters: str | Path = "memory") -> dict[str, str]:
        """What a run records of the study it used: the absolute path and a fingerprint (sha256 of
        the config, the LM's files and the ``adapters`` file, the files an env of it reads), so
        evaluating or resuming the run with another study, or a rebuilt one, can be refused."""
        import hashlib

        digest = hashlib.sha256()
        files = [self.config_file]
        if self.lm_dir.is_dir():
            files += sorted(p for p in self.lm_dir.rglob("*") if p.is_file())
        if isinstance(adapters, str) and adapters in ADAPTER_FILES:
            files.append(self.adapter_file(adapters))
        elif adapters not in ("none", None):
            files.append(Path(adapters))
        for path in files:
            if path.is_file():
                digest.update(str(path.relative_to(self.root) if path.is_relative_to(self.root) else path.name).encode())
                digest.update(path.read_bytes())
        return {"path": str(self.root.resolve()), "fingerprint": digest.hexdigest()[:16]}

    # .................................................................. config and data
    @cached_property
    def config(self) -> StudyConfig:
        source = self._config_source
        if isinstance(source, StudyConfig):
            return load_study_config(to_dict(source), self._overrides)
        if source is None:
            if not self.exists():
                raise StudyNotFoundError(
                    f"{self.root} holds no study (no config.yaml); build one with "
                    f"`python scripts/pretrain_lm.py --study-dir {self.root}` (or `make demo` for the default study)")
            source = self.config_file
        return load_study_config(source, self._overrides)

    def create(self) -> "StudyDir":
        """Make the directory and write the config; an existing study with another config is refused,
        unless all that changed is the ``train.steps`` of stages not done yet (a stage stopped early,
        or continued for longer: it resumes from its checkpoint and ends at the new count)."""
        cfg = self.config
        if self.exists():
            stored = load_study_config(self.config_file)
            if to_dict(stored) != to_dict(cfg):
                changed = config_changes(to_dict(stored), to_dict(cfg))
                if all(self._unfinished_steps(c) for c in changed):
                    save_config(cfg, self.config_file)
                    return self
                shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
                raise ConfigError(f"{self.root} holds a study with another config ({shown}); its artifacts were "
                                  "built with the stored one: choose another --study-dir for the new config")
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.config_file)
        return self

    def _unfinished_steps(self, change: str) -> bool:
        """Whether a config change (``key: old -> new``) is the step count of a stage not done yet."""
        stage, _, rest = change.split(":", 1)[0].partition(".")
        if rest != "train.steps":
            return False
        if stage == "pretrain":
            return not self.lm_dir.exists()
        return stage in ADAPTER_FILES and not self.adapter_file(stage).is_file()

    @cached_property
    def data(self) -> StudyData:
        return StudyData.shared(self.config, self.cache_dir)

    @property
    def tokenizer(self):
        return self.data.tokenizer

    def documents(self, split: str) -> list[Document]:
        return self.data.documents(split)

    # .................................................................. the LLM-LTM
    def base_dir(self) -> Path | None:
        """Where the base LM comes from: the study's pre-trained tiny LM, or None (``lm.base`` by name)."""
        return self.lm_dir if self.config.lm.base == "tiny" else None

    def load_lm(self, adapters: str | Path = "memory", untrained: bool = False, lora: bool | None = None) -> LLMLTM:
        """The LLM-LTM with ``adapters``: ``memory`` | ``lora`` (the study's), ``none``, or a
        .safetensors file. ``untrained=True`` builds the preset's LM untrained when the study has
        not pre-trained it (tests, smoke runs); otherwise a missing artifact is an error naming it."""
        cfg = self.config
        base = self.base_dir()
        if base is not None and not base.is_dir():
            if not untrained:
                raise StudyNotFoundError(f"{base} is missing: the study's LM is not pre-trained; run "
                                         f"`python scripts/pretrain_lm.py --study-dir {self.root}`")
            base = None
        path: Path | None
        if adapters == "none":
            path = None
        elif isinstance(adapters, str) and adapters in ADAPTER_FILES:
            path = self.adapter_file(adapters)
            if not path.is_file():
                if not untrained:
                    raise StudyNotFoundError(f"{path} is missing: the study's {adapters!r} stage has not run; "
                                             f"run `python scripts/pretrain_lm.py --study-dir {self.root}`")
                path = None
        else:
            path = Path(adapters)
            if not path.is_file():
                raise FileNotFoundError(f"adapters={str(adapters)!r}: no such file (or use "
                                        f"{', '.join(ADAPTER_FILES)}, none)")
        return build_llmltm(cfg.lm, self.tokenizer, base_dir=base, adapters=path, seed=cfg.seed, lora=lora)
