"""Corpora -> tokenized documents -> segments; the synthetic recall corpus and its tokenizer.

Yields tokens and documents, never models.
"""

from .loaders import CorpusError, build_linked_context, load_documents
from .segments import Document, split_documents, tokenize_documents
from .synthetic import SyntheticConfig, SyntheticDocument, Vocabulary, generate_corpus, generate_document
from .tokenizer import BOS, load_pretrained_tokenizer, synthetic_tokenizer, train_bpe

__all__ = [
    "BOS", "CorpusError", "Document", "SyntheticConfig", "SyntheticDocument", "Vocabulary",
    "build_linked_context", "generate_corpus", "generate_document", "load_documents", "load_pretrained_tokenizer",
    "split_documents", "synthetic_tokenizer", "tokenize_documents", "train_bpe",
]
