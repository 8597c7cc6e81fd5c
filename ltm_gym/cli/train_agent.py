"""Train a memory-writing agent on LLMMemory-v0 (or EmbeddingMimic-v0): one command for every
algorithm, swapped with --algo; same run directory layout, TensorBoard scalars and evaluation.

Examples:
  python scripts/train_agent.py --algo reinforce --steps 20000
  python scripts/train_agent.py --algo ppo --env-kwargs reward_mode=answer study_dir=runs/study-tiny
  python scripts/train_agent.py --algo reinforce --env-id ltm_gym/EmbeddingMimic-v0 --steps 5000   # hypothesis 1
  python scripts/train_agent.py --algo reinforce --init-from runs/<mimic-run>/agent.pt          # then fine-tune
  python scripts/train_agent.py --algo sac --init-from runs/<recall-d1-run> --env-kwargs task=recall-d2 ...  # a curriculum
  python scripts/train_agent.py --run-dir runs/<run> --resume

Data-parallel (REINFORCE): torchrun --nproc_per_node=R scripts/train_agent.py --num-envs N ...
steps N / R envs on each rank, rank r the envs r N/R .. (r+1) N/R - 1 of one process's N, with
their generators and sampling noise; gradients are averaged, so R ranks train what one process
stepping N envs trains. Rank 0 writes the run directory; resume with the same R. The SB3
algorithms are refused under torchrun.

The run directory holds config.yaml (everything resolved), tb/ (charts/reward_mean,
charts/episodic_return for every algorithm, plus each algorithm's losses/...), the agent
(agent.pt or agent.zip), and eval/agent_table.{csv,json} with --eval.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import ltm_gym.agents as agents
from ltm_gym.agents.recipes import apply_recipe, study_recipe
from ltm_gym.agents.training import RunConfig, hyperparams, train_run
from ltm_gym.core import lock_run_dir, new_run_dir, refuse_existing_run, run_config_source
from ltm_gym.core.config import load_preset_dict, merge, parse_overrides
from ltm_gym.core.distributed import from_environment
from ltm_gym.core.errors import UserError, run_main
from ltm_gym.envs import env_config
from ltm_gym.study.layout import shipped_name

DEFAULT_STEPS = 20_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=agents.NAMES, default="reinforce", help="the RL algorithm")
    parser.add_argument("--config", default=None,
                        help="hyper-parameter YAML (default: the preset agents/ALGO-ACTION_MODE where one is shipped, e.g. "
                             "ppo-select, else agents/ALGO)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a hyper-parameter, e.g. --set lr=1e-4 (repeatable)")
    parser.add_argument("--env-id", default="ltm_gym/LLMMemory-v0",
                        choices=["ltm_gym/LLMMemory-v0", "ltm_gym/EmbeddingMimic-v0"])
    parser.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                        help="environment arguments: study_dir, reward_mode, k, action_mode, action_scale, "
                             "max_segments, adapters, lm_update, ... (see help(LLMMemoryEnv))")
    parser.add_argument("--num-envs", type=int, default=8, help="documents stepped together (default 8)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"total env steps, summed over envs (default: the study recipe's, else {DEFAULT_STEPS})")
    parser.add_argument("--no-recipe", action="store_true",
                        help="leave out the study's recipe (presets/recipes/STUDY.yaml: the env arguments, "
                             "hyper-parameters and steps its agents were tuned with, e.g. babi-tiny's for its "
                             "babi-* tasks in select mode), which fills in what the command leaves out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="agent device: auto, cpu, cuda")
    parser.add_argument("--init-from", type=Path, default=None, help="agent file, or run directory, to start from "
                             "(e.g. a run of an easier level: a curriculum)")
    parser.add_argument("--save-every", type=int, default=5000, help="checkpoint every this many env steps")
    parser.add_argument("--eval", action="store_true", help="evaluate on the test split at the end")
    parser.add_argument("--run-dir", type=Path, default=None, help="run directory (default: a new one in runs/)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    rank = from_environment()

    if args.resume:
        run_config_source(args)
        given = [f for f in ("--algo", "--config", "--set", "--env-id", "--env-kwargs", "--num-envs", "--seed",
                             "--init-from", "--no-recipe")    # however spelled: --seed=3, --see 3
                 if flag_given(f, argv) or getattr(args, dest(f)) != parser.get_default(dest(f))]
        if given:
            raise UserError(f"{' '.join(given)} with --resume: a run continues with its own config "
                            f"({args.run_dir / 'config.yaml'}); only --steps may grow")
        cfg = RunConfig.load(args.run_dir)
        if args.steps is not None:
            if args.steps < cfg.steps:
                raise UserError(f"--steps {args.steps} with --resume: the run is of {cfg.steps} env steps; "
                                "a resumed run may only grow")
            cfg.steps = args.steps
        run_dir = args.run_dir
    else:
        if args.run_dir is not None and rank.is_main:
            refuse_existing_run(args.run_dir)
        if args.init_from is not None and not args.init_from.exists():
            raise FileNotFoundError(f"--init-from {args.init_from}: no such file or run directory")
        if args.steps is not None and args.steps < 1:
            raise UserError(f"--steps {args.steps}: must be >= 1")
        env_kwargs = parse_overrides(args.env_kwargs)
        if env_kwargs.get("study_dir") is not None and shipped_name(Path(str(env_kwargs["study_dir"]))) is None:
            env_kwargs["study_dir"] = str(Path(env_kwargs["study_dir"]).expanduser().resolve())   # found from anywhere
        env_config(env_kwargs)                          # refused by name before anything is built
        given = parse_overrides(args.overrides)
        hyper = load_preset_dict(args.config) if args.config else hyperparams(args.algo, env_kwargs.get("action_mode"))
        hyper, steps = merge(hyper, given), args.steps
        recipe = None if args.no_recipe or args.env_id != "ltm_gym/LLMMemory-v0" else study_recipe(env_kwargs)
        if recipe is not None:
            applied = apply_recipe(recipe if not args.config else replace(recipe, agents={}), args.algo,
                                   env_kwargs, hyper, given, steps)
            env_kwargs, hyper, steps = applied.env_kwargs, applied.hyperparams, applied.steps
            if applied.added and rank.is_main:
                print(f"recipe of study {recipe.study} (presets/recipes/{recipe.study}.yaml; --no-recipe leaves it "
                      f"out): {' '.join(applied.added)}", flush=True)
            env_config(env_kwargs)
        cfg = RunConfig(algo=args.algo, env_id=args.env_id, env_kwargs=env_kwargs,
                        num_envs=args.num_envs, steps=steps or DEFAULT_STEPS, seed=args.seed, device=args.device,
                        hyperparams=hyper, init_from=str(args.init_from) if args.init_from else None)
        env_name = cfg.env_id.split("/")[-1]
        run_dir = args.run_dir or new_run_dir(f"{env_name}__{args.algo}", args.seed, create=False, device=args.device)
    existed = run_dir.exists()
    if rank.is_main:
        lock_run_dir(run_dir)                   # another run in it is refused before anything is written
    try:
        if not args.resume and rank.is_main:
            refuse_existing_run(run_dir)        # again, holding the lock: a run that started meanwhile
        agent = train_run(cfg, run_dir, save_every=args.save_every)
    except BaseException:
        if rank.is_main and not existed and not (run_dir / "config.yaml").exists():   # refused before it started
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if not rank.is_main:                        # under torchrun rank 0 reports and evaluates
        return
    print(f"agent: {run_dir / agent.file_name} ({agent.num_timesteps} env steps)")
    if agent.num_timesteps > cfg.steps and agent.rollout_steps() is None:     # else announced before training
        print(f"note: {cfg.algo} took {agent.num_timesteps} env steps for --steps {cfg.steps}: it stops only after a "
              f"whole rollout of its {cfg.num_envs} envs (PPO / A2C: n_steps per env; REINFORCE: whole episodes)")
    if args.eval:
        from ltm_gym.agents.evaluation import evaluate_run

        print(evaluate_run(run_dir))


def dest(flag: str) -> str:
    """The attribute argparse stores ``flag`` in."""
    return "overrides" if flag == "--set" else flag[2:].replace("-", "_")


def flag_given(flag: str, argv: list[str]) -> bool:
    """Whether ``flag`` is on the command line, as ``--flag VALUE`` or ``--flag=VALUE``."""
    return any(a == flag or a.startswith(flag + "=") for a in argv)


if __name__ == "__main__":
    run_main(main)
