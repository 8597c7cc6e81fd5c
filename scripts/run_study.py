#!/usr/bin/env python
"""The whole LLM-LTM study end to end (what `make demo` runs), on the embedded tiny default by
default: corpus and tokenizer -> tiny LM pre-training -> LoRA baseline -> LM pre-training with
previous-segment memory (hypothesis 2) -> agent pre-training on EmbeddingMimic-v0 (hypothesis 1)
-> REINFORCE with and without that pre-training -> the differentiable memory writer (the upper
bound of the agents, baselines/bptt_memory.py) -> the study's tables and plots.

Every stage is cached in the study directory (named after the config's hash, so a changed
config starts a new one), resumes after an interruption, and is skipped once done.

  python scripts/run_study.py                        # tiny preset, CPU
  python scripts/run_study.py --agent-steps 20000 --set pretrain.train.steps=3000
  python scripts/run_study.py --config rugpt3small   # a GPU, the real model and your corpus
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from agents.evaluation import agent_metrics  # noqa: E402
from agents.training import agent_file, build, train_run  # noqa: E402
from baselines.bptt_memory import BPTTConfig, evaluate_writer, train_writer  # noqa: E402
from ltm_gym.core import load_config, to_dict  # noqa: E402
from ltm_gym.core.config import CONFIG_DIR  # noqa: E402
from ltm_gym.lm import build_llmltm  # noqa: E402
from ltm_gym.lm.evaluation import gap_report, markdown_table, study_rows, write_tables  # noqa: E402
from ltm_gym.lm.study import STAGES, StudyConfig, StudyData, base_dir, run_stage  # noqa: E402


def plot_curves(study_dir: Path, tables: dict, agent_rewards: dict[str, list[float]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for stage in STAGES:
        log = study_dir / "stages" / stage / "metrics.jsonl"
        if log.is_file():
            rows = [json.loads(r) for r in log.read_text().splitlines() if '"eval"' in r]
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker="o", label=stage)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats / token)")
    ax.set_title("LM stages: validation loss")
    ax.legend()
    fig.tight_layout()
    out.append(study_dir / "plots" / "validation_loss.png")
    out[-1].parent.mkdir(exist_ok=True)
    fig.savefig(out[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rewards in agent_rewards.items():
        ax.plot(rewards, label=name)
    ax.set_xlabel("update")
    ax.set_ylabel("mean step reward")
    ax.set_title("agent reward")
    ax.legend()
    fig.tight_layout()
    out.append(study_dir / "plots" / "agent_reward.png")
    fig.savefig(out[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in tables.items():
        curve = row.get("position_curve")
        if curve:
            ax.plot(range(1, len(curve) + 1), curve, label=name)
    ax.set_xlabel("position in segment")
    ax.set_ylabel("loss (nats)")
    ax.set_title("per-position loss with and without memory")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.append(study_dir / "plots" / "position_loss.png")
    fig.savefig(out[-1], dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny", help="study preset or YAML (default: tiny)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a study config value (repeatable)")
    parser.add_argument("--study-dir", type=Path, default=None,
                        help="study directory (default: runs/study-NAME-HASH of the resolved config)")
    parser.add_argument("--agent-steps", type=int, default=3000, help="REINFORCE env steps per agent")
    parser.add_argument("--mimic-steps", type=int, default=1000, help="EmbeddingMimic-v0 pre-training env steps")
    parser.add_argument("--bptt-steps", type=int, default=None,
                        help="differentiable writer steps (default: configs/bptt-tiny.yaml's)")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cfg = load_config(StudyConfig, args.config, args.overrides)
    key = hashlib.sha1(json.dumps([to_dict(cfg), args.agent_steps, args.mimic_steps, args.num_envs, args.seed,
                                   args.bptt_steps], sort_keys=True).encode()).hexdigest()[:8]
    study_dir = args.study_dir or Path("runs") / f"study-{cfg.name}-{key}"
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    print(f"study directory: {study_dir}")
    print(f"TensorBoard:     tensorboard --logdir {study_dir}")

    data = StudyData(cfg, study_dir / "cache")
    print("documents: " + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items()))
    for stage in [s for s in STAGES if s != "pretrain" or cfg.lm.base == "tiny"]:
        print(f"[{stage}] {run_stage(stage, cfg, data, study_dir)}")

    hyper = yaml.safe_load((CONFIG_DIR / "agents" / "reinforce.yaml").read_text())
    env_kwargs = {"study_dir": str(study_dir), "reward_mode": "prefix"}
    base = {"algo": "reinforce", "num_envs": args.num_envs, "seed": args.seed, "device": "auto", "hyperparams": hyper}
    runs = {
        "mimic": {**base, "env_id": "ltm_gym/EmbeddingMimic-v0", "env_kwargs": env_kwargs, "steps": args.mimic_steps},
        "reinforce": {**base, "env_id": "ltm_gym/LLMMemory-v0", "env_kwargs": env_kwargs, "steps": args.agent_steps},
        "reinforce_pretrained": {**base, "env_id": "ltm_gym/LLMMemory-v0", "env_kwargs": env_kwargs,
                                 "steps": args.agent_steps},
    }
    rewards: dict[str, list[float]] = {}
    for name, run_cfg in runs.items():
        run_dir = study_dir / "agents" / name
        init = agent_file(study_dir / "agents" / "mimic", "reinforce") if name == "reinforce_pretrained" else None
        print(f"[agent {name}] {run_dir}")
        trace = run_dir / "rewards.json"
        agent = train_run(run_cfg, run_dir, init=init, save_every=1000)
        if not trace.is_file() or agent.num_timesteps > json.loads(trace.read_text()).get("steps", 0):
            history = [r for r in agent.episode_returns]
            trace.write_text(json.dumps({"steps": agent.num_timesteps, "episode_returns": history}))
        rewards[name] = json.loads(trace.read_text())["episode_returns"]

    bptt_over = {"study_dir": str(study_dir), "train": {"seed": args.seed}}
    if args.bptt_steps:
        bptt_over["train"]["steps"] = args.bptt_steps
    bptt_cfg = load_config(BPTTConfig, "bptt-tiny", bptt_over)
    print(f"[bptt writer] {study_dir / 'bptt'}")
    writer, bptt_backend = train_writer(bptt_cfg, study_dir / "bptt")

    base_lm = base_dir(study_dir, cfg)
    baseline = build_llmltm(cfg.lm, data.tokenizer, base_dir=base_lm, adapters=study_dir / "lora_baseline.safetensors")
    memory_lm = build_llmltm(cfg.lm, data.tokenizer, base_dir=base_lm, adapters=study_dir / "memory_lm.safetensors")
    docs = data.splits["test"][: cfg.eval_documents or None]
    rows = study_rows(baseline, memory_lm, docs, cfg.eval_batch, cfg.oracle_segments)
    for name in ("reinforce", "reinforce_pretrained"):
        env, agent = build(runs[name], None, num_envs=1)
        agent.load(agent_file(study_dir / "agents" / name, "reinforce"))
        rows[f"agent_{name}"] = agent_metrics(agent, env.unwrapped.backend, "test", cfg.eval_batch)
    rows["bptt_writer"] = evaluate_writer(writer, bptt_backend, bptt_cfg, "test", with_lm_rows=False)["bptt_writer"]
    summaries = write_tables(study_dir / "eval", rows)
    tables = json.loads((study_dir / "eval" / "lm_table.json").read_text())
    plots = plot_curves(study_dir, tables, rewards)
    print()
    print(markdown_table(summaries))
    report = gap_report(summaries)
    if report:
        print("\n" + report)
    print(f"\ntables: {study_dir / 'eval'}   plots: {', '.join(str(p) for p in plots)}")


if __name__ == "__main__":
    main()
