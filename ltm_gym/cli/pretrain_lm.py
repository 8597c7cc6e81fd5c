"""LM stages of the LLM-LTM study, on the shared core (each resumes, each is skipped once done).

  pretrain  the tiny GPT-2 on the synthetic corpus (windows of several segments, so it learns to
            copy from earlier segments); saved with its tokenizer under STUDY_DIR/lm
  lora      the study's baseline: LoRA fine-tuning without memory -> lora_baseline.safetensors
  memory    hypothesis 2: LoRA + memory read path trained with the previous segment's embeddings
            as memory -> memory_lm.safetensors
  select    the reader of selection memory (action_mode=select) -> select_lm.safetensors

A study directory keeps its config; the only change it takes is the step count of a stage not done
yet (--set select.train.steps=N): stopped (Ctrl-C) and given fewer steps, or more, the stage
resumes from its checkpoint and ends at N.

The default study starts as a copy of the one shipped in the package, whose stages are all done;
--from-scratch builds it instead (in a default study directory that holds no study yet).

Examples:
  python scripts/pretrain_lm.py --from-scratch                    # the default study, all stages
  python scripts/pretrain_lm.py --study-dir runs/study-tiny --stage lora
  python scripts/pretrain_lm.py --config rugpt3small --study-dir runs/ru --stage lora memory
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ltm_gym.core import lock_run_dir
from ltm_gym.core.errors import run_main
from ltm_gym.study import StudyDir
from ltm_gym.study.layout import from_scratch_study
from ltm_gym.study.stages import STAGES, run_stage, stages_for


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None,
                        help="preset name (ltm_gym/presets) or a YAML path (default: the study's own config "
                             "when --study-dir holds one, else tiny)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set pretrain.train.steps=500 (repeatable)")
    parser.add_argument("--study-dir", type=Path, default=None,
                        help="directory of the study's artifacts (default: $LTM_GYM_STUDY_DIR or "
                             "~/.cache/ltm_gym/study-tiny)")
    parser.add_argument("--stage", nargs="+", choices=list(STAGES), default=None,
                        help="stages to run (default: all that apply to the config)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="train every stage instead of starting the default study from the shipped one")
    args = parser.parse_args(argv)

    study = from_scratch_study(args.study_dir, args.config, args.overrides) if args.from_scratch else None
    if study is None:
        config = args.config or (None if StudyDir(args.study_dir).exists() else "tiny")
        study = StudyDir(args.study_dir, config, args.overrides)
    lock_run_dir(study.root)           # one process at a time trains a study's stages
    study.create()
    print(f"study directory: {study.root}")
    print(f"TensorBoard:     tensorboard --logdir {shlex.quote(str(study.root / 'stages'))}")
    print("documents: " + ", ".join(f"{k} {len(v)}" for k, v in study.data.splits.items()))
    for stage in args.stage or stages_for(study):
        print(f"{stage}: {run_stage(stage, study)}")


if __name__ == "__main__":
    run_main(main)
