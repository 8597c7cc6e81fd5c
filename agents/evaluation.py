"""An agent's row in the study's tables, by stepping the env through its public API.

For every document of a split: ``reset(options={"document": i})``, then ``agent.predict`` and
``step`` until the episode ends; each step's ``info`` (CE, top-k, answer CE and recall of the next
segment, its token losses) goes into the same :class:`~ltm_gym.metrics.SegmentMetrics` as the LM
rows, so the agent's row is comparable with them. Works for every action and observation mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym

from ltm_gym.core.progress import progress_bar
from ltm_gym.envs import LLMMemoryEnv
from ltm_gym.metrics import SegmentMetrics
from ltm_gym.core.errors import UserError


def agent_metrics(agent: Any, env: LLMMemoryEnv, n_documents: int | None = None,
                  deterministic: bool = True, progress: bool = False) -> SegmentMetrics:
    """Run ``agent.predict`` through the first ``n_documents`` documents of ``env``'s split (all
    by default) and collect every step's metrics; ``progress``: a bar over the env steps."""
    env = env.unwrapped
    metrics = SegmentMetrics()
    docs = env.backend.docs(env.episodes.s.split)
    docs = docs if n_documents is None else docs[:n_documents]
    with progress_bar(total=sum(d.n_segments - 1 for d in docs), disable=not progress, desc="agent",
                      unit="step") as bar:
        for doc in range(len(docs)):
            obs, _ = env.reset(options={"document": doc})
            done = False
            while not done:
                action, _ = agent.predict(obs, deterministic=deterministic)
                obs, _, terminated, truncated, info = env.step(action)
                metrics.add_info(info, doc)
                done = terminated or truncated
                bar.update()
    return metrics


def eval_env(env_kwargs: dict[str, Any], split: str = "test", backend: Any = None) -> LLMMemoryEnv:
    """The single LLMMemory-v0 an agent is evaluated on: its training env's settings on ``split``,
    one whole document per episode (no ``max_segments``), its task as evaluated (a bAbI level's
    final question alone, :func:`~ltm_gym.data.tasks.protocol_task`), sharing ``backend``'s LM when
    given (a co-trained reader included, but not trained further). The reward mode is ``full`` (the
    metrics in ``info`` do not depend on it; ``mimic`` has none)."""
    import ltm_gym  # noqa: F401  (registers the env ids)
    from ltm_gym.data.tasks import protocol_task

    kwargs = {**env_kwargs, "split": split, "max_segments": None, "reward_mode": "full", "lm_update": False}
    if kwargs.get("task") is not None:
        kwargs["task"] = protocol_task(kwargs["task"])
    if backend is not None:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("study_dir", "config", "adapters", "device", "lm_lr")}
        kwargs["backend"] = backend
    return gym.make("ltm_gym/LLMMemory-v0", **kwargs).unwrapped


def evaluate_run(run_dir: str | Path, split: str = "test", with_lm_rows: bool = True) -> str:
    """The study's table for a finished agent run: its row beside the study's LM rows (for a run
    on a memory task, the task's: no memory and the facts-in-context oracle, with recall by
    distance and the facts held when asked). Writes ``RUN_DIR/eval/agent_table.{csv,json}`` (of a
    split other than test ``agent_table_<split>``, so that it leaves the test table) and returns
    the printed report."""
    from ltm_gym.study import StudyDir
    from ltm_gym.study.scoring import eval_documents, study_dir_rows, task_lm_rows
    from ltm_gym.study.reports import ladder_summary, ladder_table, report

    from .training import RunConfig, build, check_study

    run_dir = Path(run_dir)
    cfg = RunConfig.load(run_dir)
    _, agent = build(cfg, None, num_envs=1)
    check_study(cfg, agent.env, run_dir)
    agent.load(run_dir / agent.file_name)
    study = StudyDir(cfg.env_kwargs.get("study_dir"))
    env = eval_env(cfg.env_kwargs, split, backend=agent.env.backend)
    task = env.backend.task
    if task is not None:
        if split != "test":
            raise UserError(f"split {split!r}: a run on a memory task is evaluated on the task's test documents")
        rows = task_lm_rows(study, task)
        rows[f"agent_{cfg.algo}"] = agent_metrics(agent, env)
        table = report(rows, run_dir / "eval", "agent_table")
        return table + "\n\n" + ladder_table(task.name, ladder_summary(rows))
    select = cfg.env_kwargs.get("action_mode") == "select"
    rows = study_dir_rows(study, split, select_reader=select) if with_lm_rows else {}
    rows[f"agent_{cfg.algo}"] = agent_metrics(agent, env, len(eval_documents(study, split)))
    return report(rows, run_dir / "eval", "agent_table" if split == "test" else f"agent_table_{split}")
