"""What the memory environments share: the LLM-LTM and the documents.

One :class:`MemoryLMBackend` serves a single env or a vector env of N documents (the reward of N
memories is ONE batched LM forward, see :mod:`ltm_gym.envs.reward`). Several envs built on the
same backend share its model and corpus; it is never copied.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import torch

from ltm_gym.core import choose_device
from ltm_gym.data.segments import Document
from ltm_gym.data.tasks import TaskConfig, load_task, task_documents
from ltm_gym.lm import LLMLTM
from ltm_gym.metrics import TOP_K, perplexity, target_ranks
from ltm_gym.core.errors import UserError


class MemoryLMBackend:
    """An LLM-LTM plus its documents. The env never changes the model: a learner that trains the
    reader online (:class:`~ltm_gym.envs.reader_training.ReaderTraining`) calls
    :meth:`model_changed` after each update, so that what is cached about the model is recomputed."""

    def __init__(self, model: LLMLTM, documents: Mapping[str, list[Document]], tokenizer=None,
                 device: str = "auto", corpus: Any = None, task: TaskConfig | None = None) -> None:
        lazy = getattr(documents, "segment_len", None)      # a task's splits, each built when first read
        if not documents or (lazy is None and not any(documents.values())):
            raise UserError("the backend needs at least one non-empty split of documents")
        self.device = choose_device(device)
        self.model = model.to(self.device).eval()
        self.documents = documents
        self.tokenizer = tokenizer
        self.segment_len = lazy or next(d for docs in documents.values() for d in docs).ids.shape[1]
        self.n_slots, self.slot_dim = model.mem_cfg.n_slots, model.mem_cfg.slot_dim
        self.vocab_size = model.vocab_size
        self.revision = 0
        """Bumped whenever the model's weights change (what caches of model outputs key on)."""
        self.study: dict[str, str] | None = None
        """The study it was loaded from (:meth:`StudyDir.identity`), None when built from parts."""
        self.corpus = corpus
        """The study's corpus config (what a task's documents are generated in), when known."""
        self.task = task
        """The task whose documents these are (None: the study's own corpus)."""
        self.reader_on_answers = False
        """Whether the reader was trained on answer tokens alone (the study's ``select.answer_loss``,
        for a selection reader): what a co-trained reader goes on training on by default."""

    def __deepcopy__(self, memo: dict) -> "MemoryLMBackend":
        return self  # a model and a corpus are shared, never silently duplicated

    @classmethod
    def from_study(cls, study_dir: str | Path | None = None, config: str | Path | None = None,
                   adapters: str = "memory", device: str = "auto",
                   overrides: list[str] | dict[str, Any] | None = None, untrained: bool = False,
                   task: str | dict[str, Any] | TaskConfig | None = None) -> "MemoryLMBackend":
        """The study's LM and corpus (:class:`~ltm_gym.study.StudyDir`; default: the default study).
        ``adapters``: ``memory`` | ``lora`` | ``none`` | a .safetensors file (e.g. the reader of a
        differentiable-writer run). A directory without a study, or a missing artifact, is an
        error naming it; ``untrained=True`` asks for the config's LM untrained instead. ``task``: the
        documents of a task (:mod:`ltm_gym.data.tasks`) instead of the study's own corpus."""
        from ltm_gym.study import StudyDir

        resolved = None if task is None else load_task(task)   # a bad task fails before the LM loads
        study = StudyDir(study_dir, config, overrides)
        if config is None and not study.exists() and untrained:
            study = StudyDir(study_dir, "tiny", overrides)
        corpus = study.config.corpus
        documents = study.data.splits if resolved is None else task_documents(resolved, corpus, study.tokenizer)
        model = study.load_lm(adapters, untrained=untrained)
        backend = cls(model, documents, study.tokenizer, device, corpus, resolved)
        backend.study = study.identity(adapters) if study.exists() else None
        backend.reader_on_answers = adapters not in ("memory", "lora", "none") and study.config.select.answer_loss
        return backend

    def with_task(self, task: str | dict[str, Any] | TaskConfig | None) -> "MemoryLMBackend":
        """This backend (model and tokenizer shared) on ``task``'s documents;
        itself when it already serves that task or ``task`` is None."""
        if task is None:
            return self
        resolved = load_task(task)
        if self.task == resolved:
            return self
        twin = copy.copy(self)
        twin.documents = task_documents(resolved, self.corpus, self.tokenizer, self.segment_len)
        twin.task = resolved
        return twin

    def docs(self, split: str) -> list[Document]:
        if split not in self.documents or not self.documents[split]:
            known = [k for k, v in self.documents.items() if v]
            raise UserError(f"split {split!r} has no documents; splits: {known}")
        return self.documents[split]

    def model_changed(self) -> None:
        """The model's weights were changed (by a learner training the reader online)."""
        self.revision += 1

    @staticmethod
    def segment_metrics(logits: torch.Tensor, ids: torch.Tensor, losses: torch.Tensor,
                        answer_mask: torch.Tensor, answer_distance: torch.Tensor | None = None) -> list[dict[str, Any]]:
        """Per-row CE, perplexity, top-k and recall for ``info`` (vectorized over rows), with the
        token losses and answer-token count that let evaluation aggregate rows exactly; with
        ``answer_distance`` (B, L) also each answer token's fact distance and exact-recall hit."""
        ranks = target_ranks(logits.detach(), ids.to(logits.device))
        losses = losses.detach().float()
        mask = answer_mask.to(losses.device)
        cols = {"ce": losses.mean(1)}
        cols.update({f"top{k}": (ranks < k).float().mean(1) for k in TOP_K})
        n_ans = mask.sum(1)
        cols["answer_ce"] = (losses * mask).sum(1) / n_ans.clamp(min=1)
        cols["recall_acc"] = ((ranks == 0) & mask).sum(1) / n_ans.clamp(min=1)
        table = torch.stack(list(cols.values()), 1).cpu().tolist()
        counts = n_ans.cpu().tolist()
        token_losses = losses.cpu().numpy()
        if answer_distance is not None:                            # per-answer details: task documents only
            hits, mask_np = (ranks == 0).cpu().numpy(), mask.cpu().numpy()
        rows = []
        for i, (values, answered) in enumerate(zip(table, counts)):
            row: dict[str, Any] = dict(zip(cols, values))
            row["ppl"] = perplexity(row["ce"])
            row["answer_tokens"] = int(answered)
            row["token_losses"] = token_losses[i].copy()
            if not answered:
                del row["answer_ce"], row["recall_acc"]
            elif answer_distance is not None:
                row["answer_distance"] = answer_distance[i].numpy()[mask_np[i]].tolist()   # lists: rows differ
                row["answer_hit"] = hits[i][mask_np[i]].tolist()                         # in length
            rows.append(row)
        return rows
