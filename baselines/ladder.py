"""The memory-task ladder's table: for each level, the references and the agents side by side.

Rows of one level (all on the level's test documents, :mod:`ltm_gym.data.tasks`):

* ``lora_baseline``: the LoRA-tuned LM without memory (what every memory row must beat);
* ``oracle``: the same LM with one segment that states the facts each segment asks in its context
  (:func:`~ltm_gym.study.scoring.stated_facts`; at a fixed distance d, the segment d back): a
  perfect-memory reference that needs no copying across more than one segment;
* ``{policy}[{reader}]``: a scripted selection policy (:mod:`ltm_gym.baselines.scripted_memory`: ``store``,
  ``fifo``, ``unasked``, ``patient``, ``keep``) through a reader (the study's ``select`` adapters,
  or a run's co-trained reader); ``keep`` is that reader's perfect-memory reference;
* ``retrieval[{reader}]`` (bAbI levels): at the question, the positions of the whole history that
  share the most words with it (:mod:`ltm_gym.baselines.retrieval`: unlimited storage, what RAG does);
* one row per agent run evaluated on the level (its own reader when it co-trained one).

On the bAbI levels (:mod:`ltm_gym.data.babilong`) only the question's segment is scored, recall is
the exact-match accuracy of the answer word, and the scripted rows are ``keep`` (privileged: it
stores the supporting facts and holds them: the 10-slot memory's ceiling) and ``random``.

Columns: answer CE, exact recall, the share of the answer-CE gap (no memory -> oracle) closed with
its 95 % paired-bootstrap interval over the documents, the share of facts held in memory when
asked (selection rows), and recall by the facts' distance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ltm_gym.data.babilong import BabiTaskConfig
from ltm_gym.data.tasks import AnyTask, load_task
from ltm_gym.metrics import SegmentMetrics
from ltm_gym.study import StudyDir
from ltm_gym.study.scoring import task_lm_rows

from .retrieval import retrieval_row
from .scripted_memory import POLICIES, scripted_row

BABI_POLICIES = ("keep", "latest", "fifo", "random")
"""The scripted rows of a bAbI level: ``keep`` (the supporting facts, privileged), ``latest`` (each
actor's latest fact), ``fifo`` (every fact stated, newest first: what a policy that learned to
store and keep facts writes) and ``random`` (the others need facts asked at known distances)."""
RECALL_POLICIES = tuple(p for p in POLICIES if p != "latest")
"""The scripted rows of a recall level (``latest`` needs the actors of bAbI facts)."""


def ladder_rows(study_dir: str | Path | None, task: str | dict | AnyTask, readers: Sequence[str] = ("select",),
                policies: Sequence[str] | None = None, n_documents: int | None = None,
                device: str = "auto") -> dict[str, SegmentMetrics]:
    """The reference rows of one level: the LM rows and every scripted policy through every reader
    (default policies: :data:`RECALL_POLICIES`, or :data:`BABI_POLICIES` and the retrieval row on a
    bAbI level)."""
    study = StudyDir(study_dir)
    task = load_task(task)
    babi = isinstance(task, BabiTaskConfig)
    rows = task_lm_rows(study, task, n_documents, device)
    for reader in readers:
        name = Path(reader).stem if reader.endswith(".safetensors") else reader
        kwargs: dict[str, Any] = {"study_dir": str(study.root), "task": task, "adapters": reader, "device": device}
        for policy in policies or (BABI_POLICIES if babi else RECALL_POLICIES):
            rows[f"{policy}[{name}]"] = scripted_row(policy, kwargs, n_documents)
        if babi:
            rows[f"retrieval[{name}]"] = retrieval_row(study.root, task, reader, n_documents, device)
    return rows


def agent_row(run_dir: str | Path, task: str | dict | AnyTask | None, n_documents: int | None = None) -> SegmentMetrics:
    """An agent run evaluated on ``task``'s test documents (its own task when None), with the
    reader it was trained with (co-trained or not)."""
    from ltm_gym.agents.evaluation import agent_metrics, eval_env
    from ltm_gym.agents.training import RunConfig, build

    run_dir = Path(run_dir)
    cfg = RunConfig.load(run_dir)
    _, agent = build(cfg, None, num_envs=1)
    agent.load(run_dir / agent.file_name)
    kwargs = dict(cfg.env_kwargs)
    if task is not None:
        kwargs["task"] = load_task(task)
    env = eval_env(kwargs, "test", backend=agent.env.backend)
    return agent_metrics(agent, env, n_documents, progress=True)
