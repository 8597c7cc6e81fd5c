"""What the memory environments share: the LLM-LTM, the documents and the reward of a batch.

One :class:`MemoryLMBackend` serves a single env or a vector env of N documents: the reward of N
memories is ONE batched LM forward on the N next segments. :meth:`MemoryLMBackend.reward_terms`
is also the differentiable reward path (pass memories that require grad, ``grad=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ltm_gym.core import check, choose_device
from ltm_gym.data.segments import Document
from ltm_gym.lm import LLMLTM, fixed_projection
from ltm_gym.metrics import TOP_K, perplexity, prefix_losses, target_ranks

REWARD_MODES = ("prefix", "full", "answer", "delta", "mimic")
DEFAULT_STUDY_DIR = Path("runs/study-tiny")


@dataclass
class RewardConfig:
    mode: Literal["prefix", "full", "answer", "delta", "mimic"] = "prefix"
    """prefix: -(1/k) sum_i L(s_{t+1}[0:l_i] | m_t) (the study); full: -CE of s_{t+1};
    answer: -CE of the answer tokens of s_{t+1} (synthetic corpus); delta: CE without memory minus
    CE with it; mimic: d_{t-1} - d_t of hypothesis 1 (no LM forward)."""
    k: int = 4
    """Random prefixes per reward (prefix mode)."""

    def validate(self) -> None:
        check(self.mode in REWARD_MODES, "mode", self.mode, ", ".join(REWARD_MODES))
        check(self.k >= 1, "k", self.k, ">= 1")


class MemoryLMBackend:
    """An LLM-LTM plus its documents. Shared, not copied, by the envs that use it."""

    def __init__(self, model: LLMLTM, documents: dict[str, list[Document]], tokenizer=None,
                 device: str = "auto", lm_update: bool = False, lm_lr: float = 1e-4) -> None:
        if not documents or not any(documents.values()):
            raise ValueError("the backend needs at least one non-empty split of documents")
        self.device = choose_device(device)
        self.model = model.to(self.device).eval()
        self.documents = documents
        self.tokenizer = tokenizer
        self.segment_len = next(d for docs in documents.values() for d in docs).ids.shape[1]
        self.n_slots, self.slot_dim = model.mem_cfg.n_slots, model.mem_cfg.slot_dim
        self.vocab_size = model.vocab_size
        self.lm_update = lm_update
        self.optimizer = None
        if lm_update:
            params = [p for p in model.parameters() if p.requires_grad]
            if not params:
                raise ValueError("lm_update=True but the LLM-LTM has no trainable parameters")
            self.optimizer = torch.optim.AdamW(params, lr=lm_lr)
        A = fixed_projection(self.slot_dim, model.hidden, model.mem_cfg.projection_seed)
        self._A = A.to(self.device)
        self._no_memory_ce: dict[tuple[int, int, str], float] = {}

    def __deepcopy__(self, memo: dict) -> "MemoryLMBackend":
        return self  # a model and a corpus are shared, never silently duplicated

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_study(cls, study_dir: str | Path = DEFAULT_STUDY_DIR, config: str | Path | None = None,
                   adapters: str = "memory", device: str = "auto",
                   lm_update: bool = False, lm_lr: float = 1e-4, overrides: list[str] | None = None) -> "MemoryLMBackend":
        """The study's LM and corpus: ``study_dir`` written by scripts/pretrain_lm.py (or the
        embedded tiny default, built untrained, when the directory has no LM yet). ``adapters``:
        the study's ``memory`` or ``lora`` adapters, ``none``, or a .safetensors file of adapters
        (e.g. the reader a differentiable-writer run trained)."""
        import warnings

        from ltm_gym.core import load_config
        from ltm_gym.lm import build_llmltm
        from ltm_gym.lm.study import StudyConfig, StudyData, base_dir

        study_dir = Path(study_dir)
        source = config or (study_dir / "config.yaml" if (study_dir / "config.yaml").is_file() else "tiny")
        cfg = load_config(StudyConfig, source, overrides)
        data = StudyData(cfg, study_dir / "cache")
        base = base_dir(study_dir, cfg)
        if base is not None and not base.exists():
            warnings.warn(f"{base} does not exist: the env uses an UNTRAINED tiny LM; run "
                          f"scripts/pretrain_lm.py --study-dir {study_dir} for a meaningful reward", stacklevel=2)
            base = None
        named = {"memory": study_dir / "memory_lm.safetensors", "lora": study_dir / "lora_baseline.safetensors",
                 "none": None}
        if adapters in named:
            path = named[adapters]
            path = path if path is not None and path.exists() else None
        else:
            path = Path(adapters)
            if not path.is_file():
                raise FileNotFoundError(f"adapters={adapters!r}: no such file (or use memory, lora, none)")
        model = build_llmltm(cfg.lm, data.tokenizer, base_dir=base, adapters=path, seed=cfg.seed)
        return cls(model, data.splits, data.tokenizer, device, lm_update, lm_lr)

    # ------------------------------------------------------------------ rewards
    def docs(self, split: str) -> list[Document]:
        if split not in self.documents or not self.documents[split]:
            known = [k for k, v in self.documents.items() if v]
            raise ValueError(f"split {split!r} has no documents; splits: {known}")
        return self.documents[split]

    def mimic_distance(self, memory: torch.Tensor) -> torch.Tensor:
        """d = sum_i min_j ||A m_i - emb_j|| per memory: (N, m, d) -> (N,)."""
        emb = self.model.lm.get_input_embeddings().weight.detach()
        points = memory.to(self.device, emb.dtype) @ self._A.T.to(emb.dtype)   # (N, m, H)
        dist = torch.cdist(points, emb[None].expand(points.shape[0], -1, -1))   # (N, m, V)
        return dist.min(-1).values.sum(-1)

    def reward_terms(self, memory: torch.Tensor, ids: torch.Tensor, answer_mask: torch.Tensor,
                     mode: str, lengths: torch.Tensor | None = None, grad: bool = False,
                     no_memory_ce: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Reward of N memories (N, m, d) on the N next segments ``ids`` (N, L) from one forward.

        Returns ``reward`` (N,) and the per-token ``losses`` (N, L) and ``logits``. With
        ``grad=True`` the reward keeps its graph back to ``memory`` (the differentiable path);
        otherwise it runs under no_grad unless the LM is co-trained.
        """
        ids, answer_mask = ids.to(self.device), answer_mask.to(self.device)
        memory = memory.to(self.device)
        track = grad or self.lm_update
        with torch.set_grad_enabled(track):
            logits, losses = self.model(ids, memory)
        if mode == "prefix":
            if lengths is None:
                raise ValueError("prefix mode needs the prefix lengths")
            reward = -prefix_losses(losses, lengths.to(self.device)).mean(1)
        elif mode == "full":
            reward = -losses.mean(1)
        elif mode == "answer":
            m = answer_mask.float()
            reward = -(losses * m).sum(1) / m.sum(1).clamp(min=1)
        elif mode == "delta":
            if no_memory_ce is None:
                raise ValueError("delta mode needs the no-memory CE of the segments")
            reward = no_memory_ce.to(self.device) - losses.mean(1)
        else:
            raise ValueError(f"reward mode {mode!r} is not computed from the LM; one of {REWARD_MODES[:-1]}")
        return {"reward": reward, "losses": losses, "logits": logits}

    def no_memory_ce(self, ids: torch.Tensor, keys: list[tuple[int, int, str]]) -> torch.Tensor:
        """CE of segments without memory, cached per (document, segment, split) while the LM is frozen."""
        missing = [i for i, k in enumerate(keys) if k not in self._no_memory_ce or self.lm_update]
        if missing:
            with torch.no_grad():
                _, losses = self.model(ids[missing].to(self.device))
            for i, ce in zip(missing, losses.mean(1).tolist()):
                self._no_memory_ce[keys[i]] = ce
        return torch.tensor([self._no_memory_ce[k] for k in keys])

    def update_lm(self, losses: torch.Tensor) -> float:
        """One optimizer step on the LM loss of the reward's forward (memory is data: detached)."""
        assert self.optimizer is not None
        self.model.train()
        loss = losses.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.model.eval()
        return float(loss.detach())

    @staticmethod
    def segment_metrics(logits: torch.Tensor, ids: torch.Tensor, losses: torch.Tensor,
                        answer_mask: torch.Tensor) -> list[dict[str, float]]:
        """Per-row CE, perplexity, top-k and recall, for ``info`` (vectorized over rows: a
        handful of tensor ops per step whatever N is)."""
        ranks = target_ranks(logits.detach(), ids.to(logits.device))
        losses = losses.detach().float()
        mask = answer_mask.to(losses.device)
        cols = {"ce": losses.mean(1)}
        cols.update({f"top{k}": (ranks < k).float().mean(1) for k in TOP_K})
        n_ans = mask.sum(1)
        cols["answer_ce"] = (losses * mask).sum(1) / n_ans.clamp(min=1)
        cols["recall_acc"] = ((ranks == 0) & mask).sum(1) / n_ans.clamp(min=1)
        table = torch.stack(list(cols.values()), 1).cpu().tolist()
        has_answers = (n_ans > 0).cpu().tolist()
        rows = []
        for values, answered in zip(table, has_answers):
            row = dict(zip(cols, values))
            row["ppl"] = perplexity(row["ce"])
            if not answered:
                del row["answer_ce"], row["recall_acc"]
            rows.append(row)
        return rows

