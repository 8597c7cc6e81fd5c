"""The default study shipped inside the package: what goes in, and the rows it is checked against.

``ltm-gym ship-study STUDY_DIR`` copies a finished study of the ``tiny`` preset (config, tokenizer
cache, LM, the three adapters) into ``ltm_gym/default_study`` with ``reference.json``: its table
rows on the test split, measured then, which a test recomputes from the shipped files. The
default study directory starts as a copy of it (:class:`~ltm_gym.study.layout.StudyDir`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ltm_gym.core import ConfigError, config_changes, to_dict

from .config import load_study_config
from .layout import (ADAPTER_FILES, REFERENCE_FILE, SHIPPED_DIR, SHIPPED_STUDIES, StudyDir, StudyNotFoundError,
                     shipped_files)
from .scoring import study_dir_rows
from .stages import stages_for


def study_adapters(study: StudyDir) -> list[str]:
    """The adapters ``study``'s config trains (a reader of spelled slots has no ``memory`` stage)."""
    stages = stages_for(study)
    return [stage for stage in ADAPTER_FILES if stage in stages]


def study_files(study: StudyDir) -> list[str]:
    """What a shipped copy of ``study`` holds: its config, tokenizer cache, LM, and each of its
    adapters with the record of its training."""
    return list(shipped_files([ADAPTER_FILES[stage] for stage in study_adapters(study)]))


def reference_rows(study: StudyDir) -> dict[str, dict[str, float]]:
    """The study's table rows (no memory, memory conditions, oracle) on the test split, summarized."""
    return {name: m.summary() for name, m in study_dir_rows(study, "test", device="cpu").items()}


def check_shippable(study: StudyDir) -> str:
    """A study can be shipped when it has the config of a preset the package ships a study of
    (``tiny``, ``babi-tiny``, ``babi-spelled``) and every LM stage's artifact; returns that preset's name."""
    if not study.exists():
        raise StudyNotFoundError(f"{study.root} holds no study (no config.yaml)")
    name = study.config.name
    if name not in SHIPPED_STUDIES:
        raise ConfigError(f"{study.root} is a study of {name!r}; the package ships studies of {', '.join(SHIPPED_STUDIES)}")
    changed = config_changes(to_dict(study.config), to_dict(load_study_config(name)))
    if changed:
        raise ConfigError(f"{study.root} is not a study of the {name!r} preset ({', '.join(changed[:4])}); "
                          "a shipped study must be that preset's study")
    missing = [str(study.root / name) for name in study_files(study) if not (study.root / name).exists()]
    if missing:
        raise StudyNotFoundError(f"the study is not finished: {', '.join(missing)} missing; run "
                                 f"`ltm-gym pretrain-lm --study-dir {study.root}`")
    return name


def ship(study: StudyDir, dest: Path | None = None) -> dict[str, dict[str, float]]:
    """Write ``study``'s LM stages and its reference rows to ``dest`` (default: where the package
    ships its preset's study); returns the rows. The files are gathered beside ``dest`` first and
    swapped in at the end, so a failure leaves the old one."""
    name = check_shippable(study)
    rows = reference_rows(study)
    dest = Path(dest) if dest is not None else SHIPPED_STUDIES[name]
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(dest.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in study_files(study):
        src = study.root / name
        if src.is_dir():
            shutil.copytree(src, staging / name, ignore=shutil.ignore_patterns("*.lock", "*.lock.owner", "__pycache__"))
        else:
            shutil.copy2(src, staging / name)
    payload = {"split": "test", "adapters": sorted(study_adapters(study)), "rows": rows}
    (staging / REFERENCE_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return rows


def shipped_reference(root: Path = SHIPPED_DIR) -> dict[str, dict[str, float]]:
    """The rows recorded when the shipped study was built."""
    return json.loads((Path(root) / REFERENCE_FILE).read_text())["rows"]
