"""Tokenizers: a byte-level BPE (or word-level) tokenizer trained on the synthetic corpus, wrapped
as a transformers fast tokenizer and cached on disk (keyed by the corpus config); or an HF
tokenizer by local path or cached name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

from ltm_gym.core.sources import model_source

from .synthetic import SyntheticConfig, Vocabulary, generate_document
from ltm_gym.core.errors import UserError

BOS = "<|endoftext|>"


def train_bpe(texts: Iterable[str], vocab_size: int = 1024, required_words: Iterable[str] = ()):
    """Train a byte-level BPE on ``texts``; every word of ``required_words`` must end up one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=BOS, pad_token=BOS)
    split = [w for w in required_words if len(fast(" " + w)["input_ids"]) != 1]
    if split:
        raise UserError(f"tokenizer vocab_size={vocab_size} splits {len(split)} corpus words into several "
                        f"tokens (e.g. {split[:5]}); raise vocab_size")
    return fast


def train_wordlevel(words: Iterable[str]):
    """A word-level tokenizer over exactly ``words`` (split on white space) plus BOS and <unk>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {BOS: 0, "<unk>": 1}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=BOS, pad_token=BOS,
                                   unk_token="<unk>")


def synthetic_tokenizer(cfg: SyntheticConfig, cache_dir: str | Path, vocab_size: int = 1024,
                        n_train_docs: int = 300, kind: str = "bpe"):
    """The tokenizer of the synthetic corpus: loaded from ``cache_dir`` or trained and saved there.

    ``bpe``: byte-level BPE (any text); ``word``: one token per corpus word and nothing else. A BPE
    keeps every intermediate merge as a token the corpus never produces, and on a random-gap copy
    task a 2x128 GPT-2 started copying at ~300 steps with only used tokens but not within 700 steps
    with 500 unused ones; ``word`` removes them for experiments on the recall track."""
    from transformers import PreTrainedTokenizerFast

    if kind not in ("bpe", "word"):
        raise UserError(f"tokenizer kind {kind!r}; allowed: bpe, word")
    key = hashlib.sha1(json.dumps([cfg.language, cfg.n_values, cfg.n_keys, cfg.filler_words, vocab_size,
                                   n_train_docs, cfg.seed, kind]).encode()).hexdigest()[:10]
    path = Path(cache_dir) / f"tokenizer-{kind}-{cfg.language}-{key}"
    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(path))
    vocab = Vocabulary(cfg)
    if kind == "word":
        fast = train_wordlevel(vocab.all_words())
    else:
        texts = [generate_document(cfg, i, vocab).text for i in range(n_train_docs)]
        texts.append(" " + " ".join(vocab.all_words()))  # every word seen at least once
        fast = train_bpe(texts, vocab_size, vocab.all_words())
    tmp = path.with_name(path.name + ".partial")
    fast.save_pretrained(str(tmp))
    tmp.rename(path) if not path.exists() else None
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def babi_tokenizer(cache_dir: str | Path, vocab_size: int = 2048, n_stories: int = 4000):
    """The tokenizer of the bAbI-in-books study: a byte-level BPE trained on the training books'
    sentences and ``n_stories`` generated stories and questions, every word of the stories one
    token; loaded from ``cache_dir`` or trained and saved there."""
    import random

    from transformers import PreTrainedTokenizerFast

    from . import babi
    from .books import BOOK_SPLITS, SHIPPED_BOOKS, book_sentences

    book_key = hashlib.sha1(SHIPPED_BOOKS.read_bytes()).hexdigest()[:8]
    key = hashlib.sha1(json.dumps([vocab_size, n_stories, book_key, babi.words()]).encode()).hexdigest()[:10]
    path = Path(cache_dir) / f"tokenizer-babi-{key}"
    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(path))
    rng = random.Random("babi-tokenizer")
    texts = list(book_sentences(BOOK_SPLITS["train"]))
    for i in range(n_stories):
        story = babi.generate_story(1 + i % 3, 12, rng)
        question = story.ask(None, rng)
        texts.append(" ".join(f.text for f in story.facts)
                     + (f" {question.text} {babi.ANSWER_CUE} {question.answer}." if question else ""))
    fast = train_bpe(texts, vocab_size, babi.words())
    tmp = path.with_name(path.name + ".partial")
    fast.save_pretrained(str(tmp))
    tmp.rename(path) if not path.exists() else None
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def word_costs(cfg: SyntheticConfig, tokenizer) -> dict[str, int]:
    """The tokens each word of the synthetic corpus ``cfg`` takes in ``tokenizer`` (as " word", the
    way documents join words): what lays a document out in that tokenizer's segments
    (:func:`~ltm_gym.data.synthetic.generate_document`). All 1 for the corpus's own tokenizer."""
    words = Vocabulary(cfg).all_words()
    encoded = tokenizer([" " + w for w in words], add_special_tokens=False)["input_ids"]
    return {w: len(ids) for w, ids in zip(words, encoded)}


def tokenizer_fingerprint(tokenizer) -> str:
    """A digest of what a tokenizer does (its full serialization when it is a fast tokenizer, else
    its vocabulary and special tokens): two tokenizer objects with the same fingerprint tokenize
    every text alike, so what they produced may be shared."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
    else:
        text = json.dumps([sorted(tokenizer.get_vocab().items()), tokenizer.all_special_tokens])
    return hashlib.sha1(text.encode()).hexdigest()


def load_pretrained_tokenizer(name_or_path: str | Path):
    """An HF tokenizer from a local directory, a GGUF file (or a packaged one such as
    ``smollm2-135m``, :mod:`ltm_gym.core.sources`), or by name from the local cache only (never
    downloads)."""
    from transformers import AutoTokenizer

    source = model_source(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(source.location, **source.kwargs())
    except OSError:
        raise OSError(f"tokenizer {str(name_or_path)!r} is not a local directory nor in the HuggingFace cache") from None
