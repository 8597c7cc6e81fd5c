"""An agent's row in the study's tables: it writes memory through the test documents and the
LLM-LTM is scored on every next segment with that memory (same metrics as the LM rows)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ltm_gym.envs.backend import MemoryLMBackend
from ltm_gym.envs.episodes import write_memory
from ltm_gym.metrics import SegmentMetrics


@torch.no_grad()
def agent_metrics(agent: Any, backend: MemoryLMBackend, split: str = "test", batch: int = 32,
                  action_mode: str = "full", action_scale: float = 1.0, obs_mode: str = "tokens",
                  deterministic: bool = True) -> SegmentMetrics:
    """Run ``agent.predict`` over every document of ``split`` (deterministic by default)."""
    if obs_mode != "tokens":
        raise ValueError("agent evaluation reads token observations (obs_mode='tokens')")
    docs = backend.docs(split)
    metrics = SegmentMetrics()
    by_len: dict[int, list[int]] = {}
    for i, d in enumerate(docs):
        by_len.setdefault(d.n_segments, []).append(i)
    for n_seg, idx in by_len.items():
        for s in range(0, len(idx), batch):
            chunk = idx[s : s + batch]
            ids = torch.stack([docs[i].ids for i in chunk])                       # (B, n_seg, L)
            mask = torch.stack([docs[i].answer_mask for i in chunk])
            memory = np.zeros((len(chunk), backend.n_slots, backend.slot_dim), np.float32)
            for t in range(n_seg - 1):
                obs = {"tokens": ids[:, t].numpy().astype(np.int64), "memory": memory}
                action, _ = agent.predict(obs, deterministic=deterministic)
                memory = write_memory(memory, np.asarray(action, np.float32), action_mode, action_scale)
                logits, losses = backend.model(ids[:, t + 1].to(backend.device), torch.from_numpy(memory).to(backend.device))
                metrics.add(logits, ids[:, t + 1].to(backend.device), losses, mask[:, t + 1], chunk)
    return metrics


def evaluate_run(run_dir, split: str = "test", with_lm_rows: bool = True) -> dict[str, dict[str, float]]:
    """The study's table for a finished agent run: the agent's row beside the LM rows (LoRA
    baseline, zero/random/shuffled/previous-segment memory, oracle). Writes
    ``RUN_DIR/eval/agent_table.{csv,json}`` and returns the summaries."""
    from pathlib import Path

    import yaml

    import ltm_gym  # noqa: F401
    from ltm_gym.envs.backend import DEFAULT_STUDY_DIR
    from ltm_gym.lm.evaluation import study_dir_rows, write_tables

    from .training import agent_file, build

    run_dir = Path(run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    kw = dict(cfg["env_kwargs"])
    env, agent = build(cfg, None, num_envs=1)
    agent.load(agent_file(run_dir, cfg["algo"]))
    backend = env.unwrapped.backend
    rows = {}
    if with_lm_rows:
        rows.update(study_dir_rows(Path(kw.get("study_dir", DEFAULT_STUDY_DIR)), backend.tokenizer, backend.docs(split)))
    rows[f"agent_{cfg['algo']}"] = agent_metrics(agent, backend, split, action_mode=kw.get("action_mode", "full"),
                                                 action_scale=float(kw.get("action_scale", 1.0)))
    out = run_dir / "eval"
    summaries = write_tables(out, rows)
    for suffix in ("csv", "json"):
        (out / f"lm_table.{suffix}").rename(out / f"agent_table.{suffix}")
    return summaries
