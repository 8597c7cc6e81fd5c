"""The whole LLM-LTM study end to end (what ``make demo`` runs through ``scripts/run_study.py``):
corpus and tokenizer -> LM stages (incl. the reader of selection memory) -> the selection agent
(REINFORCE, ``action_mode="select"``) against the frozen ``select`` reader and co-trained with it
-> the study's continuous writer: REINFORCE from a start cloned from the hypothesis-2 memory, and
from agent pre-training on EmbeddingMimic-v0 (hypothesis 1) -> the differentiable memory writer
-> tables and plots.

Every stage is cached in the study directory and resumes after an interruption; a finished one
is skipped. It composes the LM stages (``ltm_gym.study``), the agents and the differentiable writer,
so it sits above them in the import graph; nothing imports it but
``scripts/run_study.py``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ltm_gym.agents.evaluation import agent_metrics, eval_env
from ltm_gym.agents.training import RunConfig, hyperparams, stored_changes, train_run
from ltm_gym.core import check, config_changes, load_config, to_dict
from ltm_gym.core.config import merge
from ltm_gym.data.tasks import load_task
from ltm_gym.study import StudyDir
from ltm_gym.study.plots import plot_study
from ltm_gym.study.stages import run_stage, stages_for
from ltm_gym.study.scoring import eval_documents, study_dir_rows
from ltm_gym.study.reports import ladder_summary, ladder_table, report, write_ladder

from ltm_gym.baselines.bptt_memory import BPTTConfig, WriterAgent, evaluate_writer, train_writer
from ltm_gym.baselines.ladder import agent_row, ladder_rows


@dataclass
class PipelineSettings:
    select_steps: int = 6000
    """REINFORCE env steps of each selection agent (frozen and co-trained reader)."""
    agent_steps: int = 1500
    """REINFORCE env steps of each continuous-writer agent."""
    continuous_lr: float = 1e-4
    """AdamW learning rate of the continuous writers (the selection agents keep the preset's); why
    it is lower: docs/llm-ltm.md, "The pipeline's defaults"."""
    imitate_steps: int = 1500
    """Behaviour-cloning steps of the continuous writer onto the hypothesis-2 memory before its RL
    (``agents/imitation.py``; 0: it starts from writing little)."""
    mimic_steps: int = 1000
    """EmbeddingMimic-v0 pre-training env steps (hypothesis 1)."""
    pretrained_lm_lr: float = 3e-4
    """Learning rate of the reader co-trained with the hypothesis-1 agent, as the study trained its
    LLM-LTM together with the pre-trained agent (0: the frozen hypothesis-2 reader)."""
    bptt_steps: int | None = 600
    """Differentiable-writer steps (null or 0: the bptt-tiny preset's)."""
    bptt_lr: float | None = 2e-3
    """Its peak learning rate (null or 0: the preset's)."""
    ladder: tuple[str, ...] = ("recall-d1", "recall-d4", "recall-mixed")
    """Levels of the memory-task ladder (:mod:`ltm_gym.data.tasks`) the report ends with: no memory,
    the oracle and the scripted selection policies through the study's ``select`` reader
    (:mod:`ltm_gym.baselines.ladder`); () for none."""
    ladder_steps: int = 0
    """REINFORCE env steps of each of the ladder's agents (0: none): selection agents co-trained with
    their readers (lm_lr 1e-4), one per level of ``ladder_agents``, the first from scratch and each
    next one from the previous agent and its reader; at the first level also one with the frozen
    ``select`` reader and the differentiable writer (``bptt_steps``, through whole documents). Each
    is evaluated on every level of ``ladder``."""
    ladder_agents: tuple[str, ...] = ("recall-d4", "recall-mixed")
    """Levels of the ladder's co-trained selection agents, the first from scratch, each next from the previous."""
    num_envs: int = 8
    """Envs stepped together by each agent."""
    seed: int = 0

    def validate(self) -> None:
        for name in ("select_steps", "agent_steps", "imitate_steps", "mimic_steps", "ladder_steps"):
            check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        check(self.num_envs >= 1, "num_envs", self.num_envs, ">= 1")


def set_aside(run_dir: Path, changes: list[str], log) -> None:
    """A run of the study made with another config (e.g. by an earlier version of the package) is
    moved to ``RUN_DIR.replaced-TIME``, not overwritten, and the run starts afresh."""
    if not changes:
        return
    target = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.rename(target)
    log(f"  its config changed ({', '.join(changes[:3])}{', ...' if len(changes) > 3 else ''}): "
        f"the old run is now {target}")


def run_pipeline(study: StudyDir, settings: PipelineSettings, log: Callable[[str], None] = print) -> str:
    """Run every stage of ``study`` not yet done; returns the printed report (tables, gaps, files)."""
    study.create()
    log("documents: " + ", ".join(f"{k} {len(v)}" for k, v in study.data.splits.items()))
    for stage in stages_for(study):
        log(f"[{stage}] {run_stage(stage, study)}")

    env_kwargs = {"study_dir": str(study.root)}
    select_kwargs = {**env_kwargs, "action_mode": "select", "adapters": "select", "reward_mode": "answer"}
    base = dict(algo="reinforce", num_envs=settings.num_envs, seed=settings.seed, hyperparams=hyperparams("reinforce"))
    # the continuous writers and the mimic pre-training as measured: one-step rollouts, each action
    # judged by its own reward (the preset's whole-episode rollouts are the selection agents')
    stepwise = {**base, "hyperparams": {**base["hyperparams"], "rollout": "step", "gamma": 0.0}}
    continuous = {**stepwise, "hyperparams": {**stepwise["hyperparams"], "lr": settings.continuous_lr}}
    cloned = {**continuous, "hyperparams": {**continuous["hyperparams"], "imitate_steps": settings.imitate_steps}}
    pretrained_reader = {"lm_update": True, "lm_lr": settings.pretrained_lm_lr} if settings.pretrained_lm_lr else {}
    runs = {
        "reinforce_select": RunConfig(**base, env_kwargs=select_kwargs, steps=settings.select_steps),
        "reinforce_select_cotrained": RunConfig(**base, env_kwargs={**select_kwargs, "lm_update": True, "lm_lr": 1e-3},
                                                steps=settings.select_steps),
        "mimic": RunConfig(**stepwise, env_id="ltm_gym/EmbeddingMimic-v0", env_kwargs=env_kwargs, steps=settings.mimic_steps),
        "reinforce": RunConfig(**cloned, env_kwargs={**env_kwargs, "reward_mode": "prefix_sampled"},
                               steps=settings.agent_steps),
        "reinforce_pretrained": RunConfig(**continuous,
                                          env_kwargs={**env_kwargs, "reward_mode": "prefix_sampled", **pretrained_reader},
                                          steps=settings.agent_steps,
                                          init_from=str(study.agent_dir("mimic") / "agent.pt")),
    }
    returns: dict[str, list[float]] = {}
    agents = {}
    for name, run_cfg in runs.items():
        run_dir = study.agent_dir(name)
        log(f"[agent {name}] {run_dir}")
        set_aside(run_dir, stored_changes(run_cfg, run_dir), log)
        agents[name] = train_run(run_cfg, run_dir, save_every=1000)
        trace = run_dir / "rewards.json"
        if not trace.is_file() or agents[name].num_timesteps > json.loads(trace.read_text()).get("steps", 0):
            trace.write_text(json.dumps({"steps": agents[name].num_timesteps,
                                         "episode_returns": agents[name].episode_returns}))
        returns[name] = json.loads(trace.read_text())["episode_returns"]

    bptt_over: dict = {"study_dir": str(study.root), "train": {"seed": settings.seed}}
    if settings.bptt_steps:
        bptt_over["train"]["steps"] = settings.bptt_steps
    if settings.bptt_lr:
        bptt_over["train"]["lr"] = settings.bptt_lr
    bptt_cfg = load_config(BPTTConfig, "bptt-tiny", bptt_over)
    log(f"[bptt writer] {study.bptt_dir}")
    writer, bptt_backend = fit_writer(bptt_cfg, study.bptt_dir, log)

    rows = study_dir_rows(study, "test")
    n_docs = len(eval_documents(study, "test"))
    for name in runs:
        if name == "mimic":
            continue
        # the agent's own env holds its reader (co-trained or loaded with it)
        env = eval_env(runs[name].env_kwargs, "test", backend=agents[name].env.backend)
        rows[f"agent_{name}"] = agent_metrics(agents[name], env, n_docs)
    rows["bptt_writer"] = evaluate_writer(writer, bptt_backend, bptt_cfg, "test", with_lm_rows=False)["bptt_writer"]
    text = report(rows, study.eval_dir)
    tables = json.loads((study.eval_dir / "lm_table.json").read_text())
    plots = plot_study(study, tables, returns)
    text += "\nplots: " + ", ".join(str(p) for p in plots)
    if settings.ladder:
        text += "\n\n" + run_ladder(study, settings, base, bptt_over, log)
    return text


def fit_writer(cfg: BPTTConfig, run_dir: Path, log: Callable[[str], None]):
    """Train (or resume, or reuse) the differentiable writer of ``run_dir``; an earlier run of
    another config is set aside first."""
    if (run_dir / "config.yaml").is_file():
        stored = to_dict(load_config(BPTTConfig, run_dir / "config.yaml"))
        set_aside(run_dir, config_changes(stored, to_dict(cfg)), log)
    return train_writer(cfg, run_dir)


def run_ladder(study: StudyDir, settings: PipelineSettings, base: dict, bptt_over: dict,
               log: Callable[[str], None]) -> str:
    """The ladder's tables: each level's references and, with ``ladder_steps``, its agents: the
    co-trained chain of ``ladder_agents``, and at its first level an agent of the frozen ``select``
    reader and the differentiable writer (back-propagated through whole documents)."""
    select = {"study_dir": str(study.root), "action_mode": "select", "reward_mode": "answer"}
    plan: dict[str, RunConfig] = {}
    previous: Path | None = None
    for level in settings.ladder_agents if settings.ladder_steps else ():
        name = f"ladder_{load_task(level).name}"
        kwargs = {**select, "lm_update": True, "lm_lr": 1e-4, "task": level,
                  "adapters": "select" if previous is None else str(previous / "reader.safetensors")}
        plan[name] = RunConfig(**base, env_kwargs=kwargs, steps=settings.ladder_steps,
                               init_from=None if previous is None else str(previous / "agent.pt"))
        previous = study.agent_dir(name)
    first = load_task(settings.ladder_agents[0]) if plan else None
    if first is not None:
        plan[f"ladder_{first.name}_frozen"] = RunConfig(**base, steps=settings.ladder_steps, env_kwargs={
            **select, "adapters": "select", "task": settings.ladder_agents[0]})
    agent_runs: dict[str, Path] = {}
    for name, run_cfg in plan.items():
        run_dir = agent_runs[name] = study.agent_dir(name)
        log(f"[agent {name}] {run_dir}")
        set_aside(run_dir, stored_changes(run_cfg, run_dir), log)
        train_run(run_cfg, run_dir, save_every=4000)
    writer = None
    if first is not None:
        cfg = load_config(BPTTConfig, "bptt-tiny", merge(bptt_over, {"task": settings.ladder_agents[0],
                                                                     "tbptt": first.n_segments}))
        writer_dir = study.agent_dir(f"ladder_{first.name}_writer")
        log(f"[bptt writer ladder_{first.name}] {writer_dir}")
        writer, writer_backend = fit_writer(cfg, writer_dir, log)
    parts = []
    for level in settings.ladder:
        start, task = time.time(), load_task(level)
        rows = ladder_rows(study.root, task)
        for name, run_dir in agent_runs.items():
            rows[f"agent_{name}"] = agent_row(run_dir, task)
        if writer is not None:
            env = eval_env({"action_scale": cfg.action_scale, "task": task}, "test", backend=writer_backend)
            rows[f"writer_ladder_{first.name}"] = agent_metrics(WriterAgent(writer, writer_backend.device), env)
        summaries = ladder_summary(rows)
        path = write_ladder(study.eval_dir / "ladder", task.name, summaries)
        log(f"[ladder {task.name}] {path} ({time.time() - start:.0f} s)")
        parts.append(ladder_table(task.name, summaries))
    return "\n\n".join(parts)
