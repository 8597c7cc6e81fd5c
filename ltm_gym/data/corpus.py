"""One config for "where the documents come from": the synthetic corpus or a user's corpus,
tokenized into segments and split by document."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ltm_gym.core import check

from .babilong import BabiTaskConfig, babi_documents
from .loaders import load_documents
from .segments import ANSWER_TOKENS, Document, split_documents, tokenize_documents
from .synthetic import SyntheticConfig, generate_corpus
from .tokenizer import babi_tokenizer, load_pretrained_tokenizer, synthetic_tokenizer, word_costs


@dataclass
class CorpusConfig:
    source: str = "synthetic"
    """``synthetic``, ``babi`` (bAbI stories in book text, :attr:`babi`), a directory of .txt files, a
    .jsonl (plain or linked-context), or a local HF dataset."""
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    babi: BabiTaskConfig | None = None
    """``source: babi``: the documents' task (usually ``qa: 0``, mixed, with questions along the way)."""
    tokenizer: str = "synthetic"
    """``synthetic`` (trained on the synthetic corpus and cached), ``babi`` (trained on the book text
    and bAbI stories, every story word one token) or an HF tokenizer name/path."""
    synthetic_tokenizer: str = "bpe"
    """Kind of the synthetic corpus's tokenizer: ``bpe`` (byte-level) or ``word`` (only corpus words)."""
    vocab_size: int = 1024
    segment_len: int = 64
    min_tokens: int = 128
    max_segments: int | None = None
    split_seed: int = 0
    text_field: str = "text"
    max_links: int | None = None
    """Linked-context records: a section is preceded by its first ``max_links`` linked articles (null: all)."""
    link_chars: int | None = None
    """Linked-context records: each linked article's text cut to this many characters (null: whole)."""
    answer_tokens: str = "spans"
    """``spans``: the documents' own answer spans (the synthetic corpus's values); ``carried``: on
    natural text, the tokens whose bigram the previous segment holds and the segment has not shown
    yet (:func:`~ltm_gym.data.segments.carried_tokens`): the answer CE and recall columns, and the
    ``answer`` reward, are then about what only a memory of the previous segment can tell."""

    def validate(self) -> None:
        check(self.segment_len >= 2, "segment_len", self.segment_len, ">= 2")
        check(self.min_tokens >= 0, "min_tokens", self.min_tokens, ">= 0")
        check(self.synthetic_tokenizer in ("bpe", "word"), "synthetic_tokenizer", self.synthetic_tokenizer, "bpe, word")
        check(self.max_segments is None or self.max_segments >= 2, "max_segments", self.max_segments, ">= 2 or null")
        check(self.max_links is None or self.max_links >= 0, "max_links", self.max_links, ">= 0 or null")
        check(self.link_chars is None or self.link_chars >= 1, "link_chars", self.link_chars, ">= 1 or null")
        check(self.answer_tokens in ANSWER_TOKENS, "answer_tokens", self.answer_tokens, ", ".join(ANSWER_TOKENS))
        check(not (self.source == "synthetic" and self.answer_tokens == "carried"), "answer_tokens",
              self.answer_tokens, "spans for the synthetic corpus (its answers are its values)")
        check(self.source != "babi" or self.babi is not None, "babi", self.babi, "a bAbI task for source: babi")
        if self.source == "synthetic":
            s = self.synthetic
            check(self.segment_len == s.segment_len, "segment_len", self.segment_len,
                  f"equal to synthetic.segment_len ({s.segment_len}) for the synthetic corpus")


def load_tokenizer(cfg: CorpusConfig, cache_dir: str | Path):
    if cfg.tokenizer == "synthetic":
        return synthetic_tokenizer(cfg.synthetic, cache_dir, cfg.vocab_size, kind=cfg.synthetic_tokenizer)
    if cfg.tokenizer == "babi":
        return babi_tokenizer(cache_dir, cfg.vocab_size)
    return load_pretrained_tokenizer(cfg.tokenizer)


def fresh_synthetic_documents(cfg: CorpusConfig, tokenizer, indices: list[int]) -> list[Document]:
    """Synthetic documents ``indices`` (use indices >= n_documents: never in any split), tokenized.

    Pre-training on a fresh stream keeps a small LM from memorizing the documents' filler and makes
    it learn to copy from its context instead."""
    from .synthetic import Vocabulary, generate_document

    vocab = Vocabulary(cfg.synthetic)
    costs = word_costs(cfg.synthetic, tokenizer)
    docs = [generate_document(cfg.synthetic, i, vocab, costs) for i in indices]
    return tokenize_documents([d.record(i) for i, d in zip(indices, docs)],
                              tokenizer, cfg.segment_len, cfg.min_tokens, cfg.max_segments)


def build_corpus(cfg: CorpusConfig, tokenizer) -> dict[str, list[Document]]:
    """``{"train", "validation", "test"}`` lists of segmented documents."""
    if cfg.source == "babi":
        splits = babi_documents(cfg.babi, tokenizer, cfg.segment_len)
        return {split: splits[split] for split in splits}
    if cfg.source == "synthetic":
        docs = [d.record(i) for i, d in enumerate(generate_corpus(cfg.synthetic, word_costs(cfg.synthetic, tokenizer)))]
    else:
        docs = load_documents(cfg.source, cfg.text_field, max_links=cfg.max_links, link_chars=cfg.link_chars)
    segmented = tokenize_documents(docs, tokenizer, cfg.segment_len, cfg.min_tokens, cfg.max_segments,
                                   cfg.answer_tokens)
    return split_documents(segmented, cfg.split_seed)
