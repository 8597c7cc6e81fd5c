"""Env steps per second of REINFORCE under torchrun against one process, same total envs, same run.

R processes x T/R threads (``torchrun --nproc_per_node R``, each stepping N / R envs) against
1 process x T threads stepping all N envs (T: the threads to spend, default the CPU count), on the
same study, the same agent settings and seed. Each launch builds the env and the agent, runs
``--warmup`` updates, then times ``--updates`` updates between two barriers (rank 0 reports env
steps / s: steps summed over all ranks' envs). Launches alternate between the two, ``--runs``
times; the table gives the medians and the ratio. Nothing else should run meanwhile.

  python scripts/bench_ddp.py                                   # tiny default study, N = 16, R = 2
  python scripts/bench_ddp.py --num-envs 8 --env-kwargs study_dir=runs/smollm2 adapters=select
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from ltm_gym.core.errors import UserError

WORKER_FLAG = "--worker"


def worker(args: argparse.Namespace) -> None:
    """One launch: build, warm up, time; rank 0 prints one JSON line."""
    from ltm_gym.agents.training import RunConfig, build, hyperparams
    from ltm_gym.core.config import merge, parse_overrides
    from ltm_gym.core.distributed import barrier, current

    env_kwargs = {"action_mode": "select", "reward_mode": "answer", "device": "cpu", **parse_overrides(args.env_kwargs)}
    hyper = merge(hyperparams("reinforce", env_kwargs["action_mode"]), parse_overrides(args.overrides))
    cfg = RunConfig(algo="reinforce", env_kwargs=env_kwargs, num_envs=args.num_envs, steps=1 << 40, seed=0,
                    device="cpu", hyperparams=hyper)
    _, agent = build(cfg, None)
    info = current()
    for _ in range(args.warmup):
        agent.update(agent.collect())
    barrier(info)
    start, before = time.perf_counter(), agent.num_timesteps
    for _ in range(args.updates):
        agent.update(agent.collect())
    barrier(info)
    seconds = time.perf_counter() - start
    if info.is_main:
        print(json.dumps({"steps_per_s": (agent.num_timesteps - before) / seconds, "seconds": seconds,
                          "ranks": info.world_size, "threads": torch.get_num_threads()}), flush=True)
    if info.enabled:
        torch.distributed.destroy_process_group()


def launch(args: argparse.Namespace, ranks: int, threads: int) -> dict:
    """One launch of the worker with ``ranks`` processes of ``threads`` threads each."""
    passed = ["--num-envs", str(args.num_envs), "--warmup", str(args.warmup), "--updates", str(args.updates),
              *sum((["--set", o] for o in args.overrides), []),
              *(["--env-kwargs", *args.env_kwargs] if args.env_kwargs else [])]
    me = ["-m", "ltm_gym.cli.bench.ddp", WORKER_FLAG, *passed]
    cmd = ([sys.executable, *me] if ranks == 1 else
           [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", *me])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed:\n{out.stderr[-3000:]}")
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=2, help="processes of the data-parallel launch (default 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                        help="threads in all: the single process gets them all, each rank its share (default: CPUs)")
    parser.add_argument("--num-envs", type=int, default=16, help="envs in all (a multiple of --ranks)")
    parser.add_argument("--warmup", type=int, default=3, help="updates before timing")
    parser.add_argument("--updates", type=int, default=20, help="timed updates")
    parser.add_argument("--runs", type=int, default=3, help="launches of each configuration, alternating")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="REINFORCE hyper-parameter (default: the select preset, e.g. --set rollout=step)")
    parser.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                        help="env arguments (default: action_mode=select reward_mode=answer on the default study)")
    parser.add_argument(WORKER_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    if args.ranks < 2 or args.num_envs % args.ranks or args.threads % args.ranks:
        raise UserError(f"--ranks {args.ranks} must be >= 2 and divide --num-envs {args.num_envs} and "
                        f"--threads {args.threads}")
    from ltm_gym.core.device import cpu_name

    configs = {f"1 process x {args.threads} threads": (1, args.threads),
               f"{args.ranks} processes x {args.threads // args.ranks} thread(s)": (args.ranks, args.threads // args.ranks)}
    rates: dict[str, list[float]] = {name: [] for name in configs}
    for run in range(args.runs):
        for name, (ranks, threads) in configs.items():
            rates[name].append(launch(args, ranks, threads)["steps_per_s"])
            print(f"run {run + 1}/{args.runs}  {name}: {rates[name][-1]:.1f} env steps/s", flush=True)
    single, parallel = (statistics.median(v) for v in rates.values())
    print(f"\nREINFORCE, {args.num_envs} envs in all, {args.updates} timed updates, CPU: {cpu_name()}")
    print("| launch | env steps/s (median of %d) | runs |" % args.runs)
    print("|---|---|---|")
    for name, v in rates.items():
        print(f"| {name} | {statistics.median(v):.1f} | {' / '.join(f'{x:.1f}' for x in v)} |")
    print(f"\nratio data-parallel / one process: {parallel / single:.2f}x")


if __name__ == "__main__":
    from ltm_gym.core.errors import run_main

    run_main(main)
