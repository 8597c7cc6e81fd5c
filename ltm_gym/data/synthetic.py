"""A synthetic long-document recall corpus in which memory provably matters.

Every document is ``n_segments`` segments of ``segment_len`` words. Segment t states ``n_facts``
facts ("remember : KEY VALUE .") and, when t >= ``distance``, asks again the facts of segment
t - distance ("recall : KEY VALUE ."); the VALUE of a question is an *answer token*. Values are drawn
from ``n_values`` (V) choices, so without the earlier segment the answer costs ~log V nats, and with
it plain induction copies it (the key stands right before the value). Filler is copied from a small
per-document pool of sentences, which teaches a tiny LM to copy from its context. ``n_distractors``
adds facts that are stated but never asked. English and Russian templates.

Each word is one token of the tokenizer trained on this corpus (checked when it is built), so a
document is laid out exactly in segments; answer positions are kept as character spans and mapped
to tokens through the tokenizer's offsets, which stays correct for any tokenizer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from ltm_gym.core import check

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

    n_documents: int = 1000
    n_segments: int = 4
    segment_len: int = 64
    n_facts: int = 3
    distance: int = 1
    """Segments between a fact and its question."""
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
        per_window = (self.n_facts + self.n_distractors) * (self.distance + 1)
        check(self.n_keys >= per_window, "n_keys", self.n_keys,
              f">= (n_facts + n_distractors) * (distance + 1) = {per_window} (keys must be unique in a window)")
        need = ITEM_LEN * (2 * self.n_facts + self.n_distractors)
        check(self.segment_len >= need + 4, "segment_len", self.segment_len,
              f">= {need + 4} to hold the facts and questions of a segment")
        check(self.pool_size >= 1, "pool_size", self.pool_size, ">= 1")
        check(self.filler_words >= 8, "filler_words", self.filler_words, ">= 8")


@dataclass
class SyntheticDocument:
    text: str
    answer_spans: list[tuple[int, int]]
    """Character spans of the answer (VALUE) words in ``text``."""


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


def generate_document(cfg: SyntheticConfig, index: int, vocab: Vocabulary | None = None) -> SyntheticDocument:
    """Document ``index`` of the corpus: a pure function of (cfg, index)."""
    vocab = vocab or Vocabulary(cfg)
    rng = random.Random(f"{cfg.seed}-{cfg.language}-{index}")
    pool = [[rng.choice(vocab.filler) for _ in range(rng.randint(8, 14))] + ["."] for _ in range(cfg.pool_size)]
    facts: list[list[tuple[str, str]]] = []
    words: list[str] = []
    answers: list[int] = []  # word indices of answer values
    recent: list[str] = []
    for t in range(cfg.n_segments):
        per_seg = cfg.n_facts + cfg.n_distractors
        # keys are unique in the whole document when there are enough, else within the window
        # that a question can look back over
        window = set(recent) if len(vocab.keys) - len(recent) >= per_seg else set(recent[-per_seg * cfg.distance:])
        fresh = rng.sample([k for k in vocab.keys if k not in window], per_seg)
        stated = [(k, rng.choice(vocab.values)) for k in fresh]
        recent.extend(fresh)
        facts.append(stated[: cfg.n_facts])
        items: list[tuple[list[str], int | None]] = [
            ([vocab.remember, ":", k, v, "."], None) for k, v in stated]
        if t >= cfg.distance:
            items += [([vocab.recall, ":", k, v, "."], 3) for k, v in facts[t - cfg.distance]]
        rng.shuffle(items)
        filler_len = cfg.segment_len - sum(len(w) for w, _ in items)
        sentences: list[list[str]] = []
        while sum(map(len, sentences)) < filler_len:
            sentences.append(list(rng.choice(pool)))
        excess = sum(map(len, sentences)) - filler_len
        if excess:
            sentences[-1] = sentences[-1][: len(sentences[-1]) - excess]
        # questions and facts go between whole sentences, so filler stays copyable
        slots = sorted(rng.randint(0, len(sentences) - 1) for _ in items)
        seg: list[str] = []
        for k, sentence in enumerate(sentences):
            for slot, (item, answer_at) in zip(slots, items):
                if slot == k:
                    if answer_at is not None:
                        answers.append(len(words) + len(seg) + answer_at)
                    seg.extend(item)
            seg.extend(sentence)
        words.extend(seg)
    text, spans, pos = [], [], 0
    answer_set = set(answers)
    for i, w in enumerate(words):
        pos += 1  # the space before every word
        if i in answer_set:
            spans.append((pos, pos + len(w)))
        text.append(" " + w)
        pos += len(w)
    return SyntheticDocument("".join(text), spans)


def generate_corpus(cfg: SyntheticConfig) -> list[SyntheticDocument]:
    vocab = Vocabulary(cfg)
    return [generate_document(cfg, i, vocab) for i in range(cfg.n_documents)]
