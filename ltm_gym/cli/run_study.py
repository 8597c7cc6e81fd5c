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
    defaults = PipelineSettings()
    parser.add_argument("--select-steps", type=int, default=defaults.select_steps,
                        help="env steps of each selection agent (REINFORCE, action_mode=select)")
    parser.add_argument("--agent-steps", type=int, default=defaults.agent_steps,
                        help="env steps of each continuous-writer agent (REINFORCE, action_mode=full)")
    parser.add_argument("--continuous-lr", type=float, default=defaults.continuous_lr,
                        help=f"learning rate of the continuous writers (default {defaults.continuous_lr:g}; "
                             "the selection agents use the preset's)")
    parser.add_argument("--imitate-steps", type=int, default=defaults.imitate_steps,
                        help="behaviour-cloning steps of the continuous writer onto the hypothesis-2 memory "
                             "before its RL (0: it starts from writing little)")
    parser.add_argument("--mimic-steps", type=int, default=defaults.mimic_steps,
                        help="EmbeddingMimic-v0 pre-training env steps")
    parser.add_argument("--pretrained-lm-lr", type=float, default=defaults.pretrained_lm_lr,
                        help=f"learning rate of the reader co-trained with the hypothesis-1 agent (default "
                             f"{defaults.pretrained_lm_lr:g}; 0: the frozen hypothesis-2 reader)")
    parser.add_argument("--bptt-steps", type=int, default=defaults.bptt_steps,
                        help=f"differentiable writer steps (default {defaults.bptt_steps}; 0: the bptt-tiny "
                             "preset's 1500)")
    parser.add_argument("--bptt-lr", type=float, default=defaults.bptt_lr,
                        help=f"differentiable writer's peak learning rate (default {defaults.bptt_lr:g}; 0: the "
                             "bptt-tiny preset's)")
    parser.add_argument("--ladder", nargs="*", default=list(defaults.ladder), metavar="LEVEL",
                        help="memory-task levels whose references end the report (default: "
                             f"{' '.join(defaults.ladder)}; --ladder alone: none)")
    parser.add_argument("--ladder-steps", type=int, default=defaults.ladder_steps,
                        help="REINFORCE env steps of each of the ladder's agents (default 0: none; 48000 as "
                             "measured in docs/long-memory.md)")
    parser.add_argument("--ladder-agents", nargs="+", default=list(defaults.ladder_agents), metavar="LEVEL",
                        help="levels of the ladder's co-trained selection agents, the first from scratch, each next "
                             f"from the previous (default: {' '.join(defaults.ladder_agents)})")
    parser.add_argument("--num-envs", type=int, default=defaults.num_envs)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--from-scratch", action="store_true",
                        help="train the LM stages too instead of starting the default study from the shipped one")
    args = parser.parse_args(argv)
    for level in [*args.ladder, *args.ladder_agents]:  # a bad level fails before any work
        load_task(level)
    if args.ladder_steps < 0:
        raise ValueError(f"--ladder-steps {args.ladder_steps}: must be >= 0")

    if args.from_scratch:
        study = from_scratch_study(args.study_dir, args.config, args.overrides)
    else:
        study = StudyDir(args.study_dir, args.config, args.overrides)
    lock_run_dir(study.root)           # one process at a time trains a study's stages
    print(f"study directory: {study.root}")
    print(f"TensorBoard:     tensorboard --logdir {shlex.quote(str(study.root))}")
    settings = PipelineSettings(select_steps=args.select_steps, agent_steps=args.agent_steps,
                                continuous_lr=args.continuous_lr, imitate_steps=args.imitate_steps,
                                mimic_steps=args.mimic_steps, pretrained_lm_lr=args.pretrained_lm_lr,
                                bptt_steps=args.bptt_steps, bptt_lr=args.bptt_lr, ladder=tuple(args.ladder),
                                ladder_steps=args.ladder_steps, ladder_agents=tuple(args.ladder_agents),
                                num_envs=args.num_envs, seed=args.seed)
    print("\n" + run_pipeline(study, settings))


if __name__ == "__main__":
    run_main(main)
