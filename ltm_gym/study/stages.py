"""The study's LM stages, each a small object on the shared Trainer:

* ``pretrain``: the tiny GPT-2 on windows of consecutive segments (so it learns to copy from
  earlier segments), optionally with the induction hint; saved with its tokenizer as ``lm/``;
* ``lora``: the study's baseline, LoRA without memory -> ``lora_baseline.safetensors``;
* ``memory``: hypothesis 2, LoRA + memory read path trained with the previous segment's
  embeddings as memory (optionally, in a share ``uninformative`` of the rows, memory that says
  nothing about the text) -> ``memory_lm.safetensors``;
* ``select``: LoRA + memory read path trained on selection memory (the codes of positions of the
  previous segment, :func:`ltm_gym.lm.selection_codes`: a random number, ``n_slots`` to all, of
  random ones in part of the batches, ``n_slots`` random ones in the rest) ->
  ``select_lm.safetensors``, the reader of ``action_mode="select"``. When the synthetic corpus asks
  facts ``distance`` > 1 segments later, the positions are drawn from the ``distance`` previous
  segments, as an agent's memory holds kept slots of older segments beside new ones.

A stage whose artifact exists is not run again; an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from ltm_gym.core import Trainer, seed_everything, step_generator
from ltm_gym.data.babilong import babi_level
from ltm_gym.data.corpus import fresh_synthetic_documents
from ltm_gym.data.segments import Document
from ltm_gym.data.tasks import task_documents
from ltm_gym.lm import LLMLTM, build_llmltm, find_blocks, previous_segment_memory, selection_codes
from ltm_gym.lm.induction import answer_targets, attention_hint_loss, captured_attention, induction_hint_loss

from .config import MemoryStageConfig, PretrainConfig, SelectStageConfig, StageConfig
from .layout import StudyDir
from ltm_gym.core.errors import UserError


def window_batch(docs: list[Document], batch: int, n_ctx: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Random windows of ``n_ctx`` consecutive segments: ids and answer_mask (B, n_ctx * L), and
    for bAbI-in-books documents ``answer_source`` and ``subject_source`` in window indices (-1:
    none, or outside the window)."""
    rows, masks, sources = [], [], []
    for _ in range(batch):
        d = docs[int(torch.randint(len(docs), (1,), generator=g))]
        n = min(n_ctx, d.n_segments)
        s = int(torch.randint(d.n_segments - n + 1, (1,), generator=g))
        rows.append(d.ids[s : s + n].reshape(-1))
        masks.append(d.answer_mask[s : s + n].reshape(-1))
        if d.answer_source is not None:
            shift = s * d.ids.shape[1]
            sources.append([torch.where(x >= shift, x - shift, -1)
                            for x in (d.answer_source[s : s + n].reshape(-1), d.subject_source[s : s + n].reshape(-1))])
    width = min(len(r) for r in rows)
    batch_ = {"ids": torch.stack([r[:width] for r in rows]), "answer_mask": torch.stack([m[:width] for m in masks])}
    if len(sources) == len(rows):
        batch_["answer_source"] = torch.stack([a[:width] for a, _ in sources])
        batch_["subject_source"] = torch.stack([b[:width] for _, b in sources])
    return batch_


def pair_batch(docs: list[Document], batch: int, g: torch.Generator, depth: int = 1) -> dict[str, torch.Tensor]:
    """Random (previous segments, segment) pairs: ids, answer_mask (B, L) and prev, the ``depth``
    segments before (B, L) for depth 1, else (B, depth, L)."""
    prev, cur, mask = [], [], []
    for _ in range(batch):
        d = docs[int(torch.randint(len(docs), (1,), generator=g))]
        t = int(torch.randint(depth, d.n_segments, (1,), generator=g))
        prev.append(d.ids[t - 1] if depth == 1 else d.ids[t - depth : t])
        cur.append(d.ids[t])
        mask.append(d.answer_mask[t])
    return {"prev": torch.stack(prev), "ids": torch.stack(cur), "answer_mask": torch.stack(mask)}


FACT_KEPT = 0.8
"""fact_memory_batch: the chance that each fact a segment asks is in its memory."""
RECENT = 8
"""fact_memory_batch: random positions come from up to this many segments before the target."""


def fact_memory_batch(docs: list[Document], batch: int, n_slots: int, g: torch.Generator,
                      held: str = "asked", supporting: int = 0) -> dict[str, torch.Tensor]:
    """Memories as a store-and-keep agent writes them, for the ``select`` reader: ids, answer_mask
    (B, L) of a segment t >= 1, ``prev`` (B, S, L) its whole document and ``select`` (B, n_slots)
    positions of it: the facts segment t asks (each with probability :data:`FACT_KEPT`; a question's
    VALUE has the code of its statement), facts asked in other segments, then random positions of
    the segments before t, in random slot order. Documents of one number of segments S (the first's).
    ``held`` chooses the facts of bAbI-in-books documents' memories (:func:`supporting_fact_batch`)."""
    if docs[0].oracle is not None:
        return supporting_fact_batch(docs, batch, n_slots, g, held, supporting)
    S = docs[0].n_segments
    pool = [d for d in docs if d.n_segments == S and d.answer_mask[1:].any()]
    if not pool or S < 2:
        raise UserError("fact memories need documents of >= 2 segments with answer tokens (the synthetic corpus)")
    rows = []
    for _ in range(batch):
        d = pool[int(torch.randint(len(pool), (1,), generator=g))]
        L = d.ids.shape[1]
        asked = [t for t in range(1, S) if d.answer_mask[t].any()]
        t = asked[int(torch.randint(len(asked), (1,), generator=g))]
        flat_mask = d.answer_mask.reshape(-1)
        own = [p for p in d.answer_mask[t].nonzero().flatten().add(t * L).tolist()
               if float(torch.rand((), generator=g)) < FACT_KEPT]
        others = [p for p in flat_mask.nonzero().flatten().tolist() if p // L != t]
        others = [others[i] for i in torch.randperm(len(others), generator=g).tolist()]
        n_other = int(torch.randint(0, max(0, n_slots - len(own)) + 1, (), generator=g))
        rows.append((d, t, memory_positions(own[:n_slots] + others[:n_other], t, L, n_slots, g)))
    return memory_batch(rows)


def memory_positions(chosen: list[int], t: int, L: int, n_slots: int, g: torch.Generator,
                     ordered: bool = False, avoid: frozenset[int] = frozenset()) -> torch.Tensor:
    """``chosen`` positions, filled up to ``n_slots`` with random positions of the :data:`RECENT`
    segments before ``t`` (none of ``avoid``), in random slot order, or ``ordered`` as a selection
    that stored each position at its own segment and kept it would hold them: the latest
    segment's first, in segment order within one."""
    lo = max(0, t - RECENT) * L
    filler = (lo + torch.randperm(t * L - lo, generator=g)).tolist()
    taken = set(chosen) | avoid
    chosen = chosen + [p for p in filler if p not in taken][: n_slots - len(chosen)]
    if ordered:
        return torch.tensor(sorted(chosen, key=lambda p: (-(p // L), p)))
    order = torch.randperm(len(chosen), generator=g).tolist()
    return torch.tensor([chosen[i] for i in order])


def memory_batch(rows: list[tuple[Document, int, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The batch of (document, target segment, memory positions) rows: ``prev`` the whole
    documents, ``ids`` and ``answer_mask`` the target segments, ``select`` the positions."""
    batch = {"prev": torch.stack([d.ids for d, _, _ in rows]), "ids": torch.stack([d.ids[t] for d, t, _ in rows]),
             "answer_mask": torch.stack([d.answer_mask[t] for d, t, _ in rows]),
             "select": torch.stack([sel for _, _, sel in rows])}
    if all(d.answer_source is not None for d, _, _ in rows):
        batch["support_slot"] = torch.stack([support_slots(d.answer_source[t], sel) if supporting_count(d, t) == 1
                                             else torch.full_like(d.answer_source[t], -1) for d, t, sel in rows])
    return batch


def supporting_count(d: Document, t: int) -> int:
    """How many facts segment ``t``'s question rests on: 1 (qa1), whose slot a reader finds from the
    question's own words; qa2 / qa3 chain two or three."""
    return int((d.fact_due == t).sum())


def support_slots(source: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
    """(L,) at each answer's first token of a segment (``answer_source`` (L,): the flat position
    of the supporting fact's word that states it), the slot of ``select`` (m,) that holds that
    position; -1 elsewhere and where no slot holds it."""
    hit = (source[:, None] >= 0) & (source[:, None] == select[None, :])       # (L, m)
    return torch.where(hit.any(1), hit.float().argmax(1), torch.full_like(source, -1))


def _answer_stats(losses: torch.Tensor, batch: dict) -> dict[str, float]:
    mask = batch.get("answer_mask")
    if mask is None or not mask.any():
        return {}
    return {"answer_ce": float(losses.detach()[mask].mean())}


def supporting_fact_batch(docs: list[Document], batch: int, n_slots: int, g: torch.Generator,
                          held: str = "asked", supporting: int = 0) -> dict[str, torch.Tensor]:
    """:func:`fact_memory_batch` for bAbI-in-books documents: a segment t that asks about a fact of
    an earlier segment, and a memory of the codes of facts stated before t (each with probability
    :data:`FACT_KEPT`), then random positions of the segments before t, in random slot order.
    ``held`` (:data:`HELD_FACTS`): which facts --

    - ``asked``: the facts segment t asks (``fact_due == t``) alone;
    - ``current``: those, and the latest fact of every other actor (what a memory that keeps each
      actor's latest fact holds): to answer, the reader must find the slot about the actor asked;
    - ``all``: every fact stated (the latest ``n_slots``), in the order a selection that stores and
      keeps them holds them (:func:`memory_positions`; a reader with ``memory.slot_order``): the
      reader learns to take the latest fact about what is asked.

    ``supporting`` > 0 keeps the questions that rest on that many facts (1: qa1's) alone."""
    S = docs[0].n_segments
    L = docs[0].ids.shape[1]

    def remembered(d: Document) -> list[int]:
        """The segments that ask about a fact stated in an earlier segment (what a memory must hold)."""
        due = d.fact_due.reshape(-1)
        return [t for t in range(1, S) if d.answer_mask[t].any() and (due[: t * L] == t).any()
                and (not supporting or supporting_count(d, t) == supporting)]

    pool = [(d, ts) for d in docs if d.n_segments == S for ts in [remembered(d)] if ts]
    if not pool:
        raise UserError("supporting-fact memories need documents with a question about a fact of an earlier segment")
    rows = []
    for _ in range(batch):
        d, asked = pool[int(torch.randint(len(pool), (1,), generator=g))]
        t = asked[int(torch.randint(len(asked), (1,), generator=g))]
        facts = held_facts(d, t, held)
        own = [p for p in facts if float(torch.rand((), generator=g)) < FACT_KEPT]
        facts_elsewhere = frozenset((d.fact_actor.reshape(-1)[: t * L] > 0).nonzero().flatten().tolist()
                                    if held == "current" else ())            # no overwritten fact by chance
        rows.append((d, t, memory_positions(own[-n_slots:], t, L, n_slots, g, held == "all", facts_elsewhere)))
    return memory_batch(rows)


HELD_FACTS = ("asked", "current", "all")
"""Which facts a bAbI reader's training memories hold (:func:`supporting_fact_batch`)."""


def held_facts(d: Document, t: int, held: str) -> list[int]:
    """Flat positions (in order) of the facts of document ``d`` stated before segment ``t`` that a
    memory of kind ``held`` (:data:`HELD_FACTS`) holds when segment ``t`` is read."""
    L = d.ids.shape[1]
    due = d.fact_due.reshape(-1)[: t * L]
    if held == "all":
        return (due != 0).nonzero().flatten().tolist()
    asked = (due == t).nonzero().flatten().tolist()
    if held == "asked":
        return asked
    actor = d.fact_actor.reshape(-1)[: t * L]
    named = {int(actor[p]) for p in asked}
    latest = {int(actor[p]): p for p in (actor > 0).nonzero().flatten().tolist()}   # later facts overwrite
    return sorted(asked + [p for a, p in latest.items() if a not in named])


class Stage:
    """One LM stage: which model trains, on which batches, with which loss, saved where."""

    name: str = ""

    def artifact(self, study: StudyDir) -> Path:
        return study.adapter_file(self.name)

    def settings(self, study: StudyDir) -> StageConfig:
        return getattr(study.config, self.name)

    def build(self, study: StudyDir) -> LLMLTM:
        cfg = study.config
        return build_llmltm(cfg.lm, study.tokenizer, base_dir=study.base_dir(), lora=cfg.lm.lora.enabled, seed=cfg.seed)

    def splits(self, study: StudyDir) -> dict[str, list[Document]]:
        """The documents the stage trains (``train``) and validates (``validation``) on."""
        return study.data.splits

    def batch(self, study: StudyDir, docs: list[Document], sc: StageConfig, step: int, g: torch.Generator) -> dict:
        return pair_batch(docs, sc.batch_size, g)

    def loss(self, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def save(self, model: LLMLTM, study: StudyDir) -> None:
        model.save_adapters(self.artifact(study))


class PretrainStage(Stage):
    name = "pretrain"

    def artifact(self, study: StudyDir) -> Path:
        return study.lm_dir

    def build(self, study: StudyDir) -> LLMLTM:
        cfg = study.config
        if cfg.lm.base != "tiny":
            raise UserError(f"the pretrain stage builds the tiny LM; lm.base is {cfg.lm.base!r} (already pre-trained)")
        model = build_llmltm(cfg.lm, study.tokenizer, lora=False, seed=cfg.seed)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.lm.parameters():
            p.requires_grad_(True)
        return model

    def batch(self, study: StudyDir, docs: list[Document], sc: PretrainConfig, step: int, g: torch.Generator) -> dict:
        batch = window_batch(docs, sc.batch_size, sc.context_segments, g)
        if sc.hint_at(step) > 0:
            batch["hint"] = torch.full((sc.batch_size,), sc.hint_at(step))
        if sc.answer_weight > 0:
            batch["answer_weight"] = torch.full((sc.batch_size,), sc.answer_weight)
        if sc.answer_hint > 0 and "answer_source" in batch:
            batch["answer_hint"] = torch.full((sc.batch_size,), sc.answer_hint)
        else:
            batch.pop("answer_source", None)
            batch.pop("subject_source", None)
        return batch

    def loss(self, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        weight = lambda key: float(batch[key][0]) if key in batch else 0.0  # noqa: E731
        hint, answer_hint = weight("hint"), weight("answer_hint")
        last = len(find_blocks(model.lm)) - 1
        layers = tuple(sorted(({0, 1} if hint > 0 else set()) | ({0, last} if answer_hint > 0 else set())))
        watch = captured_attention(model.lm, layers) if layers else contextlib.nullcontext([])
        with watch as captured:
            _, losses = model(batch["ids"])
        attention = dict(zip(layers, captured))                  # hooks fire in block order, once a block
        total, stats = losses.mean(), {}
        mask = batch["answer_mask"]
        if weight("answer_weight") > 0 and mask.any():
            answer_ce = losses[mask].mean()
            total = total + weight("answer_weight") * answer_ce
            stats["answer_ce"] = float(answer_ce.detach())
        if hint > 0:
            bos = batch["ids"].new_full((len(batch["ids"]), 1), model.bos_token_id)
            aux = induction_hint_loss([attention[0], attention[1]], torch.cat([bos, batch["ids"]], 1))
            total, stats["induction_hint"] = total + hint * aux, float(aux.detach())
        if answer_hint > 0:      # block 0 reads each fact's and question's actor, the last block the answer
            subject = attention_hint_loss(attention[0], batch["subject_source"])
            answer = attention_hint_loss(attention[last], answer_targets(batch["answer_source"], batch["subject_source"]))
            total = total + answer_hint * (subject + answer)
            stats["subject_hint"], stats["answer_hint"] = float(subject.detach()), float(answer.detach())
        return total, stats

    def save(self, model: LLMLTM, study: StudyDir) -> None:
        tmp = study.root / "lm.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        model.lm.save_pretrained(str(tmp))
        study.tokenizer.save_pretrained(str(tmp))
        tmp.rename(self.artifact(study))


class LoraStage(Stage):
    """The baseline has no memory: only LoRA trains."""

    name = "lora"

    def build(self, study: StudyDir) -> LLMLTM:
        model = super().build(study)
        for n, p in model.named_parameters():
            if not n.startswith("lm."):
                p.requires_grad_(False)
        return model

    def loss(self, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        _, losses = model(batch["ids"])
        return losses.mean(), _answer_stats(losses, batch)


class MemoryStage(Stage):
    """Hypothesis 2: the read path learns on the previous segment's pooled embeddings (and, in a
    share ``uninformative`` of the rows, on memory that says nothing about the text)."""

    name = "memory"
    ZERO, NOISE, OTHER = 1, 2, 3
    """Kinds of uninformative rows (0: the previous segment's memory)."""

    def batch(self, study: StudyDir, docs: list[Document], sc: MemoryStageConfig, step: int, g: torch.Generator) -> dict:
        batch = pair_batch(docs, sc.batch_size, g)
        if sc.uninformative > 0:
            B, m = len(batch["ids"]), study.config.lm.memory
            blank = torch.rand(B, generator=g) < sc.uninformative
            batch["kind"] = torch.randint(self.ZERO, self.OTHER + 1, (B,), generator=g) * blank
            batch["noise"] = torch.randn(B, m.n_slots, m.slot_dim, generator=g)
        return batch

    def memory(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        """The memory each row reads: its previous segment's, or the uninformative kind drawn for it."""
        real = previous_segment_memory(model, batch["prev"])
        if "kind" not in batch:
            return real
        kind = batch["kind"][:, None, None].to(real.device)
        mem = torch.where(kind == self.ZERO, torch.zeros_like(real), real)
        mem = torch.where(kind == self.NOISE, batch["noise"].to(real.device) * real.std(), mem)
        return torch.where(kind == self.OTHER, real.roll(1, dims=0), mem)

    def loss(self, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        _, losses = model(batch["ids"], self.memory(model, batch))
        return losses.mean(), _answer_stats(losses, batch)


class SelectStage(Stage):
    """A reader for selection memory: chosen positions' codes, as ``action_mode="select"`` writes them."""

    name = "select"

    @staticmethod
    def depth(study: StudyDir) -> int:
        """Previous segments whose positions a memory can hold: the facts' distance."""
        corpus = study.config.corpus
        return corpus.synthetic.distance if corpus.source == "synthetic" else 1

    def splits(self, study: StudyDir) -> dict[str, list[Document]]:
        """The study corpus's, or with ``select.task`` that level's documents in the study's tokens."""
        sc = study.config.select
        if not sc.task:
            return super().splits(study)
        level = babi_level(sc.task)
        return task_documents(replace(level, questions=sc.task_questions or level.questions), study.config.corpus,
                              study.tokenizer)

    def batch(self, study: StudyDir, docs: list[Document], sc: SelectStageConfig, step: int, g: torch.Generator) -> dict:
        m = study.config.lm.memory.n_slots
        if sc.fact_memories > 0 and float(torch.rand((), generator=g)) < sc.fact_memories:
            batch = fact_memory_batch(docs, sc.batch_size, m, g, sc.held_facts, sc.supporting_facts)
        else:
            batch = pair_batch(docs, sc.batch_size, g, self.depth(study))
            B, n = len(batch["ids"]), batch["prev"][0].numel()
            k = m
            if float(torch.rand((), generator=g)) < sc.all_positions:
                k = int(torch.randint(m, n + 1, (), generator=g))
            batch["select"] = torch.rand(B, n, generator=g).argsort(1)[:, :k].sort(1).values
        if sc.answer_loss:
            batch["answer_only"] = torch.ones(len(batch["ids"]))
        if sc.read_hint > 0 and "support_slot" in batch:
            batch["read_hint"] = torch.full((len(batch["ids"]),), sc.read_hint)
        return batch

    def loss(self, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        prev = batch["prev"]
        codes = selection_codes(model, prev.reshape(-1, prev.shape[-1]))
        codes = codes.reshape(len(prev), -1, codes.shape[-1])                         # (B, depth * L, d)
        mem = codes.gather(1, batch["select"][:, :, None].expand(-1, -1, codes.shape[-1]))
        if "read_hint" in batch:
            return self.hinted_loss(model, batch, mem)
        if "answer_only" in batch:
            mask = batch["answer_mask"]
            losses = (model.candidate_losses(batch["ids"], mem[None], mask)[0] if model.shares_trunk
                      else model(batch["ids"], mem)[1])
            answer_ce = losses[mask].mean()
            return answer_ce, {"answer_ce": float(answer_ce.detach())}
        _, losses = model(batch["ids"], mem)
        return losses.mean(), _answer_stats(losses, batch)

    @staticmethod
    def hinted_loss(model: LLMLTM, batch: dict, mem: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The answer tokens' CE plus ``read_hint`` times -log of the attention that head 0 of the
        last reader puts, from the position that predicts each answer, on the slot holding its
        supporting fact (:func:`support_slots`): the reader is shown which slot answers, so that it
        learns to tell the slot about the actor asked among several facts."""
        with model.captured_reads() as reads:
            _, losses = model(batch["ids"], mem)
        mask = batch["answer_mask"]
        answer_ce = losses[mask].mean()
        rows, cols = (batch["support_slot"] >= 0).nonzero(as_tuple=True)
        stats = {"answer_ce": float(answer_ce.detach())}
        if len(rows) == 0:
            return answer_ce, stats
        hint = -reads[-1][rows, 0, cols, batch["support_slot"][rows, cols]].mean()   # [BOS, seg]: col predicts col
        stats["read_hint"] = float(hint.detach())
        return answer_ce + float(batch["read_hint"][0]) * hint, stats


STAGES: dict[str, Stage] = {s.name: s for s in (PretrainStage(), LoraStage(), MemoryStage(), SelectStage())}


def stages_for(study: StudyDir) -> list[str]:
    """The stages that apply to the study's config (pretrain only for the tiny LM; no hypothesis-2
    memory for a reader of spelled slots, ``memory.spelled`` or ``read_path: tokens``, which reads
    selections alone)."""
    lm = study.config.lm
    return [s for s in STAGES if (s != "pretrain" or lm.base == "tiny")
            and (s != "memory" or not lm.memory.spells)]


def run_stage(name: str, study: StudyDir, resume: bool = True) -> Path:
    """Train stage ``name`` of ``study`` and write its artifact; returns the artifact's path.
    A finished stage (artifact present) is not run again."""
    if name not in STAGES:
        raise UserError(f"stage {name!r} is not one of {tuple(STAGES)}")
    stage = STAGES[name]
    artifact = stage.artifact(study)
    if artifact.exists():
        return artifact
    study.create()
    cfg, sc = study.config, stage.settings(study)
    seed_everything(cfg.seed)
    model = stage.build(study)
    splits = stage.splits(study)
    train_docs, val_docs = splits["train"], splits["validation"] or splits["train"]
    seed = sc.train.seed
    fresh = cfg.corpus.source == "synthetic" and sc.fresh_documents

    def batch_fn(step: int) -> dict:
        g = step_generator(seed, step)
        docs = train_docs
        if fresh:  # a fresh stream of documents outside every split
            first = cfg.corpus.synthetic.n_documents + step * sc.batch_size
            docs = fresh_synthetic_documents(cfg.corpus, study.tokenizer, list(range(first, first + sc.batch_size)))
        return stage.batch(study, docs, sc, step, g)

    g_val = torch.Generator().manual_seed(seed + 99)
    val = stage.batch(study, val_docs, sc.validation(), 1 << 30, g_val)

    def eval_fn(m: torch.nn.Module) -> dict[str, float]:
        dev = next(m.parameters()).device
        loss, extra = stage.loss(m, {k: v.to(dev) for k, v in val.items()})
        return {"loss": float(loss), **extra}

    run_dir = study.stage_dir(name)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model, sc.train, stage.loss, batch_fn, run_dir=run_dir, eval_fn=eval_fn, prefetch=True)
    trainer.fit(resume=resume)
    trainer.close()
    stage.save(model.cpu(), study)
    return artifact
