"""The whole LLM-LTM study end to end (what `make demo` runs), on the embedded tiny default by
default: corpus and tokenizer -> tiny LM pre-training -> LoRA baseline -> LM pre-training with
previous-segment memory (hypothesis 2) -> agent pre-training on EmbeddingMimic-v0 (hypothesis 1)
-> REINFORCE from it (its reader co-trained with it, as the study trained its LLM-LTM) and from a
start cloned from the hypothesis-2 memory -> the differentiable memory writer (the upper bound of
the agents, baselines/bptt_memory.py) -> the study's tables and plots -> the memory-task ladder's
references (and with --ladder-steps its agents) at recall-d1, recall-d4 and recall-mixed.

Every stage is cached in the study directory, resumes after an interruption, and is skipped once
done; the default study starts as a copy of the one shipped in the package (its LM stages done),
unless --from-scratch. The default study directory is $LTM_GYM_STUDY_DIR, else ~/.cache/ltm_gym/study-tiny, where
gymnasium.make("ltm_gym/LLMMemory-v0") finds it; a directory that holds a study of another config
is refused (pass another --study-dir).

  python scripts/run_study.py                        # tiny preset, CPU
  python scripts/run_study.py --ladder-steps 48000   # + the ladder's agents (d4, then mixed)
  python scripts/run_study.py --study-dir runs/long --agent-steps 20000 --set pretrain.train.steps=3000
  python scripts/run_study.py --config rugpt3small --study-dir runs/ru   # a GPU, the real model and your corpus
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ltm_gym.core import lock_run_dir
from ltm_gym.core.config import add_dataclass_arguments, dataclass_from_args
from ltm_gym.core.errors import run_main
from ltm_gym.data.tasks import load_task
from ltm_gym.study import StudyDir
from ltm_gym.study.layout import from_scratch_study
from ltm_gym.pipeline import PipelineSettings, run_pipeline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny", help="study preset or YAML (default: tiny)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a study config value (repeatable)")
    parser.add_argument("--study-dir", type=Path, default=None,
                        help="study directory (default: $LTM_GYM_STUDY_DIR or ~/.cache/ltm_gym/study-tiny)")
    add_dataclass_arguments(parser, PipelineSettings)
    parser.add_argument("--from-scratch", action="store_true",
                        help="train the LM stages too instead of starting the default study from the shipped one")
    args = parser.parse_args(argv)
    settings = dataclass_from_args(PipelineSettings, args)
    for level in [*settings.ladder, *settings.ladder_agents]:  # a bad level fails before any work
        load_task(level)

    if args.from_scratch:
        study = from_scratch_study(args.study_dir, args.config, args.overrides)
    else:
        study = StudyDir(args.study_dir, args.config, args.overrides)
    lock_run_dir(study.root)           # one process at a time trains a study's stages
    print(f"study directory: {study.root}")
    print(f"TensorBoard:     tensorboard --logdir {shlex.quote(str(study.root))}")
    print("\n" + run_pipeline(study, settings))


if __name__ == "__main__":
    run_main(main)
