"""The package's commands: ``ltm-gym COMMAND [ARGS]`` (installed with the wheel), or
``python scripts/COMMAND.py [ARGS]`` from a checkout; each command has ``--help``.

The commands compose everything else (the LM stages, the envs, the agents, the baselines), so this
package sits on top of the import graph and nothing else imports it.
"""

from __future__ import annotations

import difflib
import importlib
import sys

USER_COMMANDS = {
    "pretrain-lm": ("pretrain_lm", "the study's LM stages: tiny LM, LoRA baseline, memory and select readers"),
    "build-linked-corpus": ("build_linked_corpus", "linked HTML pages (e.g. a Debian manual) -> linked-context records"),
    "evaluate-lm": ("evaluate_lm", "the study's LM table (no memory, memory conditions, oracle)"),
    "train-agent": ("train_agent", "train a memory agent (reinforce, ppo, a2c, sac, td3, ddpg, tqc)"),
    "evaluate-agent": ("evaluate_agent", "an agent run's row beside the LM rows"),
    "eval-ladder": ("eval_ladder", "the memory-task ladder's references and agents"),
    "train-bptt-memory": ("train_bptt_memory", "the differentiable memory writer"),
    "train-rmt": ("train_rmt", "the Recurrent Memory Transformer reference (memory trained by backpropagation)"),
    "run-study": ("run_study", "the whole LLM-LTM study end to end (make demo)"),
    "train-looped": ("train_looped", "train a looped transformer or GPT-2 on in-context regression"),
    "eval-looped": ("eval_looped", "evaluate a looped-regression run against least squares"),
    "compare-looped": ("compare_looped", "looped vs GPT-2 (and the report's variants) on the same prompts"),
    "report": ("report", "one markdown page of every result table under runs/, dated and placed"),
}
BENCHMARKS = {
    "bench-env": ("bench.env", "env steps per second"),
    "bench-reward": ("bench.reward", "the reward's forward"),
    "bench-looped": ("bench.looped", "a looped training step against the reference code"),
    "bench-ddp": ("bench.ddp", "REINFORCE under torchrun against one process"),
    "gpu-check": ("bench.gpu_check", "the CUDA tests and one table of speeds on a GPU (make gpu-check)"),
}
MAINTENANCE = {
    "ship-study": ("maintenance.ship_study", "ship a finished tiny study as the package's default study"),
    "build-books": ("maintenance.build_books", "rebuild the shipped book text (bAbI tasks' background) from Debian's janeaustenr"),
}
COMMANDS = {**USER_COMMANDS, **BENCHMARKS, **MAINTENANCE}
"""Every command: its module under ``ltm_gym.cli`` and one line of what it does."""


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ltm-gym COMMAND [ARGS]   (ltm-gym COMMAND --help for a command's arguments)"]
    for title, group in (("commands", USER_COMMANDS), ("benchmarks", BENCHMARKS), ("maintenance", MAINTENANCE)):
        lines += ["", f"{title}:"] + [f"  {name:<{width}}  {text}" for name, (_, text) in group.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Dispatch ``argv`` (default: the process's arguments) to one command's ``main``."""
    from ltm_gym.core.errors import run_main

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return
    name = args[0]
    if name not in COMMANDS:
        near = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        print(f"error: unknown command {name!r}{hint}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(f"ltm_gym.cli.{COMMANDS[name][0]}")
    sys.argv[:] = [f"ltm-gym {name}", *args[1:]]       # as the command's own usage and provenance name it
    run_main(module.main, args[1:])
