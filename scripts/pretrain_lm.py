#!/usr/bin/env python
"""LM stages of the LLM-LTM study, on the shared core (each resumes, each is skipped once done).

  pretrain  the tiny GPT-2 on the synthetic corpus (windows of several segments, so it learns to
            copy from earlier segments); saved with its tokenizer under STUDY_DIR/lm
  lora      the study's baseline: LoRA fine-tuning without memory -> lora_baseline.safetensors
  memory    hypothesis 2: LoRA + memory read path trained with the previous segment's embeddings
            as memory -> memory_lm.safetensors

Examples:
  python scripts/pretrain_lm.py --study-dir runs/study-tiny                 # all three stages
  python scripts/pretrain_lm.py --study-dir runs/study-tiny --stage lora
  python scripts/pretrain_lm.py --config rugpt3small --study-dir runs/ru --stage lora memory
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltm_gym.core import load_config  # noqa: E402
from ltm_gym.lm.study import STAGES, StudyConfig, StudyData, run_stage  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny", help="preset name in configs/ or a YAML path (default: tiny)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set pretrain.train.steps=500 (repeatable)")
    parser.add_argument("--study-dir", type=Path, default=Path("runs/study-tiny"),
                        help="directory of the study's artifacts (default: runs/study-tiny)")
    parser.add_argument("--stage", nargs="+", choices=STAGES, default=None,
                        help="stages to run (default: all that apply to the config)")
    args = parser.parse_args(argv)
    cfg = load_config(StudyConfig, args.config, args.overrides)
    stages = args.stage or [s for s in STAGES if s != "pretrain" or cfg.lm.base == "tiny"]
    print(f"study directory: {args.study_dir}")
    print(f"TensorBoard:     tensorboard --logdir {args.study_dir / 'stages'}")
    data = StudyData(cfg, args.study_dir / "cache")
    print("documents: " + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items()))
    for stage in stages:
        path = run_stage(stage, cfg, data, args.study_dir)
        print(f"{stage}: {path}")


if __name__ == "__main__":
    main()
