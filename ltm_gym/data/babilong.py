"""bAbI questions hidden in book text (BABILong's protocol): the documents of the ``babi-*`` tasks.

A document is a generated bAbI story (:mod:`ltm_gym.data.babi`) whose facts are inserted, in
order, at random sentence boundaries of a run of consecutive book sentences
(:mod:`ltm_gym.data.books`: each split its own books), with the question and its one-word answer at
the very end, laid out in exactly ``tokens // segment_len`` segments of the study tokenizer's
tokens. Levels are named by length: ``babi-qa1-4k`` is task qa1 in 4 x 1024 tokens.

What the env and its references read from a document (:class:`~ltm_gym.data.segments.Document`):
the answer word's tokens (``answer_mask``; exact-match accuracy is recall on them), at each fact's
marked word the segment that asks it (``fact_due``: the supporting facts of a question; -1: a fact
no question rests on), the distance in segments from the earliest supporting fact to its question
(``answer_distance``), and the supporting facts' own tokens (``oracle``: what the oracle reads in
context right before the question's segment). With ``questions`` > 1, earlier questions are asked
along the way (each about the story so far): a denser reward for training; the protocol's
question is the last one.
"""

from __future__ import annotations

import functools
import json
import random
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import torch

from ltm_gym.core import ConfigError, check, to_dict
from ltm_gym.core.keyed import Keyed

from .babi import ANSWER_CUE, QA_TASKS, Question, Story, generate_story
from .books import BOOK_SPLITS, load_books
from .segments import Document
from .tokenizer import tokenizer_fingerprint

DEFAULT_FACTS = {1: 8, 2: 12, 3: 16}
"""Facts per story when ``facts`` is 0 (bAbI's stories are of this order)."""
K = 1024
NAME = re.compile(r"^babi-qa([123])-(\d+)k$")


@dataclass
class BabiTaskConfig:
    """One level of the bAbI-in-books tasks."""

    name: str = "babi-qa1-1k"
    qa: int = 1
    """bAbI task: 1, 2 or 3 (0: each document draws one, for a study's pre-training corpus)."""
    tokens: int = K
    """Document length in the study's tokens (rounded down to whole segments)."""
    facts: int = 0
    """Facts per story (0: :data:`DEFAULT_FACTS` of the task)."""
    questions: int = 1
    """Questions per document: the last at the end (the protocol's), the others along the way."""
    n_documents: int = 400
    """Training documents."""
    n_eval: int = 100
    """Validation and test documents each."""
    book: str | None = None
    """One book for every split (default: each split's own books, :data:`~ltm_gym.data.books.BOOK_SPLITS`)."""
    seed: int = 0

    def validate(self) -> None:
        check(self.qa in (0, *QA_TASKS), "task.qa", self.qa, "1, 2, 3 (or 0: mixed)")
        check(self.tokens >= 2, "task.tokens", self.tokens, ">= 2 segments' worth")
        check(self.facts >= 0, "task.facts", self.facts, ">= 0")
        check(self.questions >= 1, "task.questions", self.questions, ">= 1")
        check(self.n_documents >= 1, "task.n_documents", self.n_documents, ">= 1")
        check(self.n_eval >= 1, "task.n_eval", self.n_eval, ">= 1")
        if self.book is not None:
            books = load_books()
            check(self.book in books, "task.book", self.book, ", ".join(sorted(books)))

    def n_facts(self, qa: int) -> int:
        return self.facts or DEFAULT_FACTS[qa]

    def books(self, split: str) -> tuple[str, ...]:
        return (self.book,) if self.book else BOOK_SPLITS[split]


def is_babi(name: Any) -> bool:
    return isinstance(name, str) and name.startswith("babi-")


def babi_level(name: str) -> BabiTaskConfig:
    """The level a name says: ``babi-qa{1,2,3}-{N}k`` (N x 1024 tokens)."""
    m = NAME.match(name)
    if not m:
        raise ConfigError(f"task {name!r} is not a bAbI level; levels are babi-qa1-4k, babi-qa2-16k, ... "
                          "(babi-qa{1,2,3}-{N}k, N x 1024 tokens)")
    return BabiTaskConfig(name=name, qa=int(m.group(1)), tokens=int(m.group(2)) * K)


class TokenPieces:
    """Text pieces tokenized once per tokenizer, as " piece" (so pieces concatenate as running text
    does in a byte-level BPE: a space starts each word)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[str, list[int]] = {}

    def __call__(self, text: str, space: bool = True) -> list[int]:
        """The tokens of " text" (``space=False``: of "text", e.g. a sentence's final ".")."""
        piece = " " + text if space else text
        if piece not in self._cache:
            self._cache[piece] = self.tokenizer(piece, add_special_tokens=False)["input_ids"]
        return self._cache[piece]

    def many(self, texts: list[str]) -> list[list[int]]:
        missing = [" " + t for t in dict.fromkeys(texts) if " " + t not in self._cache]
        if missing:
            encoded = self.tokenizer(missing, add_special_tokens=False)["input_ids"]
            self._cache.update(zip(missing, encoded))
        return [self._cache[" " + t] for t in texts]


def pieces_for(tokenizer) -> TokenPieces:
    """The text pieces of ``tokenizer``, shared by every tokenizer with its fingerprint."""
    return _pieces(Keyed(tokenizer_fingerprint(tokenizer), tokenizer))


@functools.lru_cache(maxsize=8)
def _pieces(tokenizer: Keyed[Any]) -> TokenPieces:
    return TokenPieces(tokenizer.value)


def _story(task: BabiTaskConfig, rng: random.Random) -> tuple[Story, list[tuple[int, Question]]]:
    """A story with its questions: (facts stated before it, question), the final one last."""
    qa = task.qa or rng.choice(QA_TASKS)
    for _ in range(100):
        story = generate_story(qa, task.n_facts(qa), rng)
        final = story.ask(None, rng)
        if final is None:
            continue
        along = []
        for n in sorted(rng.sample(range(1, len(story.facts)), min(task.questions - 1, len(story.facts) - 1))):
            q = story.ask(n, rng)
            if q is not None:
                along.append((n, q))
        return story, along + [(len(story.facts), final)]
    raise ConfigError(f"task {task.name!r}: no story of {task.n_facts(qa)} facts asks a qa{qa} question; raise task.facts")


def babi_document(task: BabiTaskConfig, split: str, index: int, tokenizer, segment_len: int,
                  book_ids: list[list[int]]) -> Document:
    """Document ``index`` of ``split``: a pure function of (task, split, index, tokenizer)."""
    rng = random.Random(f"babi-{task.seed}-{task.qa}-{task.facts}-{task.questions}-{split}-{index}")
    pieces = pieces_for(tokenizer)
    story, questions = _story(task, rng)
    S = task.tokens // segment_len
    check(S >= 2, "task.tokens", task.tokens, f">= 2 segments of {segment_len} tokens")
    # the story's items in order: facts, and each question after the facts it is about
    items: list[tuple[str, Any]] = []
    asked = iter(questions[:-1])
    nxt = next(asked, None)
    for i, fact in enumerate(story.facts):
        items.append(("fact", i))
        while nxt is not None and nxt[0] == i + 1:
            items.append(("question", nxt[1]))
            nxt = next(asked, None)
    fact_ids = pieces.many([f.text[:-1] for f in story.facts])          # the fact without its "."
    dot = pieces(".", space=False)
    q_ids = {id(q): (pieces(f"{q.text} {ANSWER_CUE}"), pieces(q.answer), dot) for _, q in questions}
    size = lambda kind, x: len(fact_ids[x]) + len(dot) if kind == "fact" else sum(map(len, q_ids[id(x)]))  # noqa: E731
    final = questions[-1][1]
    fixed = sum(size(k, x) for k, x in items) + size("question", final)
    need = S * segment_len - fixed
    if need < 0:
        raise ConfigError(f"task {task.name!r}: {S} segments of {segment_len} tokens cannot hold its story "
                          f"({fixed} tokens); raise task.tokens or lower task.facts")
    # a run of consecutive book sentences, the last one cut to fill the document exactly
    book: list[list[int]] = []
    at, total = rng.randrange(len(book_ids)), 0
    while total < need:
        sentence = book_ids[at % len(book_ids)]
        book.append(sentence[: need - total])
        total += len(book[-1])
        at += 1
    slots = sorted(rng.randint(0, len(book)) for _ in items)            # before book sentence k (k = end)
    ids: list[int] = []
    answers: list[tuple[int, Question]] = []                             # (answer token index, question)
    marked: dict[int, int] = {}                                          # fact -> token index of its marked word
    first: dict[int, int] = {}                                           # fact -> token index of its actor
    asked_at: dict[int, int] = {}                                        # question (id) -> index of its first token
    placed = 0
    for k in range(len(book) + 1):
        while placed < len(items) and slots[placed] == k:
            kind, x = items[placed]
            if kind == "fact":
                first[x] = len(ids)
                ids += fact_ids[x]
                marked[x] = len(ids) - 1
                ids += dot
            else:
                q, a, d = q_ids[id(x)]
                asked_at[id(x)] = len(ids)
                ids += q
                answers.append((len(ids), x))
                ids += a + d
            placed += 1
        if k < len(book):
            ids += book[k]
    q, a, d = q_ids[id(final)]
    asked_at[id(final)] = len(ids)
    ids += q
    answers.append((len(ids), final))
    ids += a + d
    assert len(ids) == S * segment_len, (len(ids), S * segment_len)
    n = len(ids)
    answer_mask = torch.zeros(n, dtype=torch.bool)
    distance = torch.zeros(n, dtype=torch.int16)
    due = torch.zeros(n, dtype=torch.int16)
    for i in marked.values():
        due[i] = -1
    source = torch.full((n,), -1, dtype=torch.long)
    subject = torch.full((n,), -1, dtype=torch.long)
    for x, i in marked.items():
        subject[i] = first[x]
    for at, question in answers:
        named = [p for p in range(asked_at[id(question)], at) for f in question.support if ids[p] == ids[first[f]]]
        if named:
            subject[at - 1] = named[-1]                                  # the question's actor, read before the answer
        width = len(pieces(question.answer))
        stating = [marked[f] for f in question.support if ids[marked[f]] == ids[at]]
        if stating:
            source[at] = max(stating)
        seg = at // segment_len
        answer_mask[at : at + width] = True
        distance[at : at + width] = seg - min(marked[f] for f in question.support) // segment_len
        for f in question.support:
            if due[marked[f]] <= 0:                                      # the first question that asks it
                due[marked[f]] = seg
    oracle = torch.tensor([t for f in final.support for t in fact_ids[f] + dot], dtype=torch.long)
    actors = sorted({f.actor for f in story.facts})
    actor = torch.zeros(n, dtype=torch.int16)
    for x, i in marked.items():
        actor[i] = 1 + actors.index(story.facts[x].actor)
    shape = (S, segment_len)
    return Document(torch.tensor(ids, dtype=torch.long).view(shape), answer_mask.view(shape), f"{split}-{index}",
                    distance.view(shape), due.view(shape), oracle, actor.view(shape), source.view(shape),
                    subject.view(shape))


class BabiSplits(Mapping):
    """A task's ``train``/``validation``/``test`` documents, each split built when first read
    (an env that evaluates at 64k tokens never builds 64k-token training documents)."""

    def __init__(self, task: BabiTaskConfig, tokenizer, segment_len: int) -> None:
        self.task, self.tokenizer, self.segment_len = task, tokenizer, segment_len
        self._built: dict[str, list[Document]] = {}

    def __getitem__(self, split: str) -> list[Document]:
        if split not in BOOK_SPLITS:
            raise KeyError(split)
        if split not in self._built:
            books = load_books()
            sentences = [s for b in self.task.books(split) for s in books[b]]
            book_ids = pieces_for(self.tokenizer).many(sentences)
            count = self.task.n_documents if split == "train" else self.task.n_eval
            self._built[split] = [babi_document(self.task, split, i, self.tokenizer, self.segment_len, book_ids)
                                  for i in range(count)]
        return self._built[split]

    def __iter__(self) -> Iterator[str]:
        return iter(BOOK_SPLITS)

    def __len__(self) -> int:
        return len(BOOK_SPLITS)


def babi_documents(task: BabiTaskConfig, tokenizer, segment_len: int) -> BabiSplits:
    """The task's documents in ``tokenizer``'s tokens, shared per process (by task and tokenizer)."""
    key = json.dumps([to_dict(task), tokenizer_fingerprint(tokenizer), segment_len], sort_keys=True)
    return _babi_splits(Keyed(key, (task, tokenizer, segment_len)))


@functools.lru_cache(maxsize=8)
def _babi_splits(args: Keyed[tuple[BabiTaskConfig, Any, int]]) -> BabiSplits:
    return BabiSplits(*args.value)
