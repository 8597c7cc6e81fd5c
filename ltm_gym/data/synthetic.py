"""A synthetic long-document recall corpus in which memory provably matters.

Every document is ``n_segments`` segments of ``segment_len`` words. Segment t states ``n_facts``
facts ("remember : KEY VALUE .") and asks each of them again ``distance`` segments later
("recall : KEY VALUE ."); the VALUE of a question is an *answer token*. With ``max_distance`` >
``distance`` each fact draws its own distance uniformly from ``distance .. max_distance``, a segment
asks at most ``2 * n_facts`` questions, and a fact whose question would fall past the document's end
(or into a full segment) is stated but never asked. ``n_distractors`` adds facts that are stated but
never asked. Values are drawn from ``n_values`` (V) choices, so without the earlier segment the
answer costs ~log V nats, and with it plain induction copies it (the key stands right before the
value). Filler is copied from a small per-document pool of sentences, which teaches a tiny LM to
copy from its context. English and Russian templates.

Each word is one token of the tokenizer trained on this corpus (checked when it is built), so a
document is laid out exactly in segments; answer positions are kept as character spans and mapped
to tokens through the tokenizer's offsets, which stays correct for any tokenizer. Every answer
span carries its fact's distance, and every statement's VALUE span the segment that asks it (or -1):
what the task ladder's metrics (recall by distance, facts held when asked) and its scripted
policies read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal, Mapping

from ltm_gym.core import check
from ltm_gym.core.errors import UserError

SYLLABLES = {
    "en": ["ba", "ko", "ri", "ten", "lu", "mo", "sa", "vel", "di", "na", "por", "ge", "fi", "tra", "lo", "mer"],
    "ru": ["ма", "ко", "ри", "тен", "лу", "мо", "са", "вел", "ди", "на", "пор", "ге", "фи", "тра", "ло", "мер"],
}
KEY_SYLLABLES = {
    "en": ["zar", "quo", "xim", "yul", "wex", "jor", "hap", "zek"],
    "ru": ["зар", "кво", "ксим", "юл", "вэкс", "жор", "хап", "зек"],
}
TEMPLATES = {"en": ("remember", "recall"), "ru": ("запомни", "вспомни")}
FACT_WORDS = 4  # "remember : KEY VALUE" / "recall : KEY VALUE", then "." -> 5 words
ITEM_LEN = FACT_WORDS + 1


@dataclass
class SyntheticConfig:
    """Knobs of the recall corpus (the ``tiny`` preset's defaults)."""

    n_documents: int = 1200
    n_segments: int = 4
    segment_len: int = 64
    n_facts: int = 3
    distance: int = 1
    """Segments between a fact and its question (the shortest, with ``max_distance``)."""
    max_distance: int = 0
    """0: every fact is asked ``distance`` segments later; > ``distance``: each fact draws its
    distance uniformly from ``distance .. max_distance``."""
    n_values: int = 50
    n_keys: int = 64
    n_distractors: int = 0
    filler_words: int = 160
    pool_size: int = 3
    """Filler sentences per document (a small pool makes filler copyable)."""
    language: Literal["en", "ru"] = "en"
    seed: int = 0

    def validate(self) -> None:
        check(self.n_documents >= 1, "n_documents", self.n_documents, ">= 1")
        check(self.n_segments >= 2, "n_segments", self.n_segments, ">= 2")
        check(1 <= self.distance < self.n_segments, "distance", self.distance, f"in [1, n_segments={self.n_segments})")
        check(self.n_values >= 2, "n_values", self.n_values, ">= 2")
        check(self.n_facts >= 0, "n_facts", self.n_facts, ">= 0")
        check(self.n_distractors >= 0, "n_distractors", self.n_distractors, ">= 0")
        check(self.max_distance == 0 or self.distance < self.max_distance < self.n_segments, "max_distance",
              self.max_distance, f"0, or in ({self.distance}, n_segments={self.n_segments})")
        per_window = (self.n_facts + self.n_distractors) * (self.longest + 1)
        check(self.n_keys >= per_window, "n_keys", self.n_keys,
              f">= (n_facts + n_distractors) * (longest distance + 1) = {per_window} (keys must be unique in a window)")
        need = ITEM_LEN * (self.n_facts + self.n_distractors + self.max_questions)
        check(self.segment_len >= need + 4, "segment_len", self.segment_len,
              f">= {need + 4} to hold the facts and questions of a segment")
        check(self.pool_size >= 1, "pool_size", self.pool_size, ">= 1")
        check(self.filler_words >= 8, "filler_words", self.filler_words, ">= 8")

    @property
    def longest(self) -> int:
        """The longest distance a fact can be asked at."""
        return max(self.distance, self.max_distance)

    @property
    def max_questions(self) -> int:
        """Questions one segment can ask."""
        return 2 * self.n_facts if self.max_distance else self.n_facts


@dataclass
class SyntheticDocument:
    text: str
    answer_spans: list[tuple[int, int]]
    """Character spans of the answer (VALUE) words in ``text``."""
    answer_distances: list[int] = field(default_factory=list)
    """The distance (in segments) of the fact each answer span asks."""
    fact_spans: list[tuple[int, int]] = field(default_factory=list)
    """Character spans of the VALUE words of every statement ("remember : KEY VALUE")."""
    fact_dues: list[int] = field(default_factory=list)
    """For each statement: the segment that asks it, or -1 (never asked)."""

    def record(self, doc_id: object) -> dict:
        """The document as :func:`~ltm_gym.data.segments.tokenize_documents` reads it."""
        return {"id": doc_id, "text": self.text, "answer_spans": self.answer_spans,
                "answer_distances": self.answer_distances, "fact_spans": self.fact_spans, "fact_dues": self.fact_dues}


def _words(syllables: list[str], n: int, rng: random.Random, parts: tuple[int, int], taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(syllables) for _ in range(rng.randint(*parts)))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


class Vocabulary:
    """The closed word lists of one language: filler words, keys and values (2-digit numbers)."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        rng = random.Random(f"vocab-{cfg.language}")
        taken: set[str] = set(TEMPLATES[cfg.language])
        self.filler = _words(SYLLABLES[cfg.language], cfg.filler_words, rng, (2, 3), taken)
        self.keys = _words(KEY_SYLLABLES[cfg.language], cfg.n_keys, rng, (2, 2), taken)
        self.values = [str(10 + i) for i in range(cfg.n_values)] if cfg.n_values <= 90 else \
            [str(100 + i) for i in range(cfg.n_values)]
        self.remember, self.recall = TEMPLATES[cfg.language]

    def all_words(self) -> list[str]:
        return [self.remember, self.recall, ":", "."] + self.filler + self.keys + self.values


def generate_document(cfg: SyntheticConfig, index: int, vocab: Vocabulary | None = None,
                      costs: Mapping[str, int] | None = None) -> SyntheticDocument:
    """Document ``index`` of the corpus: a pure function of (cfg, index, costs).

    ``costs``: the tokens each word takes in the tokenizer that will read the document (see
    :func:`~ltm_gym.data.tokenizer.word_costs`; None: one each, as the corpus's own tokenizer
    keeps them). Every segment is then exactly ``segment_len`` tokens: filler is cut to fit, and a
    gap of fewer tokens than the cut word is filled with "." (one token in any tokenizer we read)."""
    vocab = vocab or Vocabulary(cfg)
    cost = (lambda w: 1) if costs is None else costs.__getitem__  # noqa: E731
    rng = random.Random(f"{cfg.seed}-{cfg.language}-{index}")
    pool = [[rng.choice(vocab.filler) for _ in range(rng.randint(8, 14))] + ["."] for _ in range(cfg.pool_size)]
    due: dict[int, list[tuple[str, str, int]]] = {}  # segment -> the facts it asks (key, value, distance)
    words: list[str] = []
    answers: dict[int, int] = {}  # word index of an answer value -> its fact's distance
    statements: dict[int, int] = {}  # word index of a stated value -> the segment asking it (-1: never)
    recent: list[str] = []
    per_seg = cfg.n_facts + cfg.n_distractors
    for t in range(cfg.n_segments):
        # keys are unique in the whole document when there are enough, else within the window
        # that a question can look back over
        window = set(recent) if len(vocab.keys) - len(recent) >= per_seg else set(recent[-per_seg * cfg.longest:])
        fresh = rng.sample([k for k in vocab.keys if k not in window], per_seg)
        stated = [(k, rng.choice(vocab.values)) for k in fresh]
        recent.extend(fresh)
        asked_at: list[int] = []
        for n, (k, v) in enumerate(stated):
            when = -1
            if n < cfg.n_facts:
                d = rng.randint(cfg.distance, cfg.max_distance) if cfg.max_distance else cfg.distance
                if t + d < cfg.n_segments and len(due.get(t + d, [])) < cfg.max_questions:
                    due.setdefault(t + d, []).append((k, v, d))
                    when = t + d
            asked_at.append(when)
        # (item words, offset of its VALUE, distance if a question else None, asking segment if a statement)
        items: list[tuple[list[str], int, int | None, int | None]] = [
            ([vocab.remember, ":", k, v, "."], 3, None, when) for (k, v), when in zip(stated, asked_at)]
        items += [([vocab.recall, ":", k, v, "."], 3, d, None) for k, v, d in due.get(t, [])]
        rng.shuffle(items)
        filler_len = cfg.segment_len - sum(cost(w) for item, *_ in items for w in item)
        if filler_len < 0:
            raise UserError(f"segment_len={cfg.segment_len} tokens cannot hold segment {t}'s facts and questions "
                            f"({cfg.segment_len - filler_len} tokens in this tokenizer); raise segment_len")
        sentences: list[list[str]] = []
        filled = 0
        while filled < filler_len:
            sentences.append(list(rng.choice(pool)))
            filled += sum(map(cost, sentences[-1]))
        while filled > filler_len:
            filled -= cost(sentences[-1].pop())
        if filled < filler_len:
            sentences[-1].extend(["."] * (filler_len - filled))
        # questions and facts go between whole sentences, so filler stays copyable
        slots = sorted(rng.randint(0, len(sentences) - 1) for _ in items)
        seg: list[str] = []
        for k, sentence in enumerate(sentences):
            for slot, (item, value_at, distance, when) in zip(slots, items):
                if slot == k:
                    at = len(words) + len(seg) + value_at
                    if distance is not None:
                        answers[at] = distance
                    else:
                        statements[at] = when
                    seg.extend(item)
            seg.extend(sentence)
        words.extend(seg)
    text: list[str] = []
    doc = SyntheticDocument("", [])
    pos = 0
    for i, w in enumerate(words):
        pos += 1  # the space before every word
        if i in answers:
            doc.answer_spans.append((pos, pos + len(w)))
            doc.answer_distances.append(answers[i])
        elif i in statements:
            doc.fact_spans.append((pos, pos + len(w)))
            doc.fact_dues.append(statements[i])
        text.append(" " + w)
        pos += len(w)
    doc.text = "".join(text)
    return doc


def generate_corpus(cfg: SyntheticConfig, costs: Mapping[str, int] | None = None) -> list[SyntheticDocument]:
    vocab = Vocabulary(cfg)
    return [generate_document(cfg, i, vocab, costs) for i in range(cfg.n_documents)]
