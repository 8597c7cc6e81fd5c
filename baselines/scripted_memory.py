"""Scripted selection policies: the references of the memory-task ladder.

Each policy writes a selection action (``action_mode="select"``: a score per position of the
current segment and per previous slot; the env stores the top ``n_slots``) from the env's own
annotations of the current segment (``info["fact_due"]``: at each stated fact's VALUE, the
segment that will ask it, -1 if none, 0 where no fact is stated):

* ``store``: this segment's stated facts, nothing kept (what an agent judged by its immediate
  reward alone learns: at distance >= 2 no stored fact pays in the next segment);
* ``fifo``: this segment's stated facts, then the previous slots that hold facts, newest first
  (a queue; it does not know which facts will be asked);
* ``unasked``: ``fifo`` without the facts already asked (each fact is asked once, and an agent sees
  the question when it comes): the best-informed policy that does not know the future. Of the
  facts not yet asked, the newest are the likeliest to be asked again when some are never asked
  (``recall-mixed``'s distractors) or come at random distances, so it is the reference for
  what an agent can reach by observation alone;
* ``patient``: the facts not yet asked that it already holds come first, for up to the task's
  longest distance (``longest``: by then every fact that will be asked has been); new facts take
  the slots left. It also never reads the future: under capacity pressure it stores a share of the
  facts and holds each until it is asked, which catches more per slot than holding many facts
  briefly when the facts asked late outnumber the ones asked soon (``recall-mixed``: a fact not yet
  asked after k segments is asked at the next one with probability 1 / (12 - k), rising with age);
* ``keep``: perfect store-and-keep: the facts that will still be asked, new or kept, the ones asked
  soonest first when they do not all fit (privileged: it reads when each fact is asked);
* ``latest`` (bAbI-in-books documents): each actor's latest fact: this segment's stated facts,
  then the slots whose actor has not been restated, newest first (the memory a reader trained with
  ``select.held_facts: current`` reads; scripted from the documents' actor annotations, though an
  agent can see the actor in the segment);
* ``random``: uniform random scores (seeded per document): the memory of a policy that learned
  nothing, random positions and slots of the recent past.

Read through a reader (the study's ``select`` adapters, or a co-trained one), ``keep`` is the
perfect-memory reference of the reader: what an agent that always holds the right facts gets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ltm_gym.envs import LLMMemoryEnv
from ltm_gym.envs.episodes import Episodes
from ltm_gym.envs.selection import top_choices
from ltm_gym.metrics import SegmentMetrics
from ltm_gym.core.errors import UserError

POLICIES = ("store", "fifo", "unasked", "patient", "keep", "latest", "random")


class ScriptedSelector:
    """One scripted policy on one single env; it follows which fact each slot holds (the segment
    asking it, 0 for none) by replaying the env's own top-k choice."""

    def __init__(self, policy: str, segment_len: int, n_slots: int, longest: int = 1, seed: int = 0) -> None:
        if policy not in POLICIES:
            raise UserError(f"scripted policy {policy!r} is not one of {POLICIES}")
        self.policy, self.L, self.m, self.longest = policy, segment_len, n_slots, longest
        self.rng = np.random.default_rng(seed)
        self.slot_due = np.zeros(n_slots, dtype=np.int64)
        self.slot_age = np.zeros(n_slots, dtype=np.int64)
        self.slot_actor = np.zeros(n_slots, dtype=np.int64)

    def reset(self) -> None:
        self.slot_due[:] = 0
        self.slot_age[:] = 0
        self.slot_actor[:] = 0

    def act(self, fact_due: np.ndarray, segment: int, fact_actor: np.ndarray | None = None) -> np.ndarray:
        """The action for the current segment (index ``segment``) given its ``fact_due`` (L,) and,
        for ``latest``, its ``fact_actor`` (L,: 1 + the actor of each stated fact, 0 elsewhere)."""
        L, m = self.L, self.m
        score = np.full(L + m, -1.0, dtype=np.float32)
        stated = fact_due != 0
        if self.policy == "random":
            score = self.rng.uniform(-1, 1, L + m).astype(np.float32)
        if self.policy in ("store", "fifo", "unasked"):
            score[:L][stated] = 1.0
        # what an agent can see of a slot: it holds a fact, not asked yet (-1: never; it cannot tell)
        unasked = (self.slot_due != 0) & ((self.slot_due == -1) | (self.slot_due > segment))
        if self.policy == "patient":
            score[:L][stated] = 0.5
            age = self.slot_age + 1                     # segments since the slot's fact was stated
            held = unasked & (age < self.longest)
            score[L:][held] = 1.0 - 0.01 * np.minimum(age[held], 40)
        if self.policy in ("fifo", "unasked"):
            held = unasked if self.policy == "unasked" else self.slot_due != 0
            score[L:][held] = 0.5 - 0.01 * np.minimum(self.slot_age[held], 40)
        if self.policy == "keep":
            # a fact asked in segment u must be held in every memory written at steps t .. u - 1
            new = fact_due > segment
            score[:L][new] = 1.0 - 0.01 * np.minimum(fact_due[new] - segment, 40)
            kept = self.slot_due > segment
            score[L:][kept] = 1.0 - 0.01 * np.minimum(self.slot_due[kept] - segment, 40)
        actor = np.zeros(L, dtype=np.int64) if fact_actor is None else fact_actor.astype(np.int64)
        if self.policy == "latest":
            if fact_actor is None:
                raise UserError("the 'latest' policy needs the documents' fact actors (bAbI-in-books tasks)")
            restated = np.isin(self.slot_actor, actor[actor > 0])
            score[:L][stated] = 1.0
            held = (self.slot_actor > 0) & ~restated
            score[L:][held] = 0.5 - 0.01 * np.minimum(self.slot_age[held], 40)
        chosen = top_choices(score[None], m)[0]
        due = np.concatenate([np.where(stated, fact_due, 0), self.slot_due])
        age = np.concatenate([np.zeros(L, dtype=np.int64), self.slot_age + 1])
        who = np.concatenate([actor, self.slot_actor])
        self.slot_due, self.slot_age, self.slot_actor = due[chosen], age[chosen], who[chosen]   # -1: never asked
        return score


def scripted_metrics(env: LLMMemoryEnv, policy: str, n_documents: int | None = None,
                     batch: int = 64) -> SegmentMetrics:
    """Step ``env``'s split (select mode, task documents) with a scripted ``policy``: ``batch``
    documents at a time, one batched LM forward per segment (the env's own episodes, so the rows
    are what stepping each document alone gives, up to float rounding)."""
    env = env.unwrapped
    settings = env.episodes.s
    if settings.action_mode != "select":
        raise UserError(f"scripted policies write selections; the env's action_mode is {settings.action_mode!r}")
    backend = env.backend
    task = backend.task
    n = len(backend.docs(settings.split))
    documents = list(range(n if n_documents is None else min(n, n_documents)))
    lengths = [backend.docs(settings.split)[d].n_segments for d in documents]
    chunks = [[d for d, k in zip(documents, lengths) if k == length][start:start + batch]   # episodes end together
              for length in sorted(set(lengths)) for start in range(0, lengths.count(length), batch)]
    metrics = SegmentMetrics()
    rngs = [np.random.default_rng(0) for _ in range(min(batch, len(documents)))]   # unused: no prefix lengths
    for chunk in chunks:
        episodes = Episodes(backend, settings, len(chunk))
        for i, doc in enumerate(chunk):
            episodes.reset_one(i, rngs[i], doc)
        dues = [episodes.fact_due(i) for i in range(len(chunk))]
        if any(due is None for due in dues):
            raise UserError("scripted policies need task documents (env task=...): the study corpus has no "
                            "fact annotations")
        selectors = [ScriptedSelector(policy, backend.segment_len, backend.n_slots,
                                      getattr(task, "longest", 1) if task is not None else 1, seed=doc)
                     for doc in chunk]
        def actors(i: int) -> np.ndarray | None:           # privileged: the document's annotation
            annotated = episodes.docs[episodes.doc[i]].fact_actor
            return None if annotated is None else annotated[int(episodes.t[i])].numpy()

        done = False
        while not done:
            actions = np.stack([sel.act(due, int(t), actors(i))
                                for i, (sel, due, t) in enumerate(zip(selectors, dues, episodes.t))])
            _, terminated, truncated, infos = episodes.step(actions, rngs[:len(chunk)])
            for doc, info in zip(chunk, infos):
                metrics.add_info(info, doc)
            dues = [info.get("fact_due") for info in infos]
            done = bool((terminated | truncated).all())
    return metrics


def scripted_row(policy: str, env_kwargs: dict[str, Any], n_documents: int | None = None,
                 split: str = "test") -> SegmentMetrics:
    """:func:`scripted_metrics` on ``split`` of a fresh evaluation env built from ``env_kwargs``."""
    import gymnasium as gym

    import ltm_gym  # noqa: F401  (registers the env ids)

    kwargs = {**env_kwargs, "split": split, "action_mode": "select", "reward_mode": "full", "lm_update": False,
              "max_segments": None}
    return scripted_metrics(gym.make("ltm_gym/LLMMemory-v0", **kwargs), policy, n_documents)
