"""Corpus loaders: a directory of .txt files, a .jsonl with a ``text`` field, the linked-context
format of the study, or a HuggingFace ``datasets`` name available locally.

Linked-context records are ``{"id", "title", "sections": [str, ...], "links": [[id, ...], ...]}``:
as the study built its data, every section is preceded by the text of the articles it links to
(their own sections, without their context); unknown link ids are skipped. ``max_links`` keeps a
section's first links only and ``link_chars`` cuts each linked article's text, so that a section of
a page that links to many long ones is still reached within a document's first segments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable
from ltm_gym.core.errors import UserError


class CorpusError(UserError):
    """A corpus cannot be read or holds no usable document."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{n} is not valid JSON ({exc.msg})") from None
    return rows


def build_linked_context(records: Iterable[dict[str, Any]], max_links: int | None = None,
                         link_chars: int | None = None) -> list[dict[str, Any]]:
    """One document per article: each section preceded by the text of the articles it links to
    (its first ``max_links``, each cut to ``link_chars`` characters at a word boundary; None: all)."""
    records = list(records)
    body = {}
    for r in records:
        for field in ("id", "sections"):
            if field not in r:
                raise CorpusError(f"linked-context record {r.get('title', r)!r} has no {field!r} field")
        body[r["id"]] = "\n".join(r["sections"])
    docs = []
    for r in records:
        links = r.get("links") or [[] for _ in r["sections"]]
        if len(links) != len(r["sections"]):
            raise CorpusError(f"record {r['id']!r}: {len(links)} link lists for {len(r['sections'])} sections")
        parts = []
        for section, ids in zip(r["sections"], links):
            linked = [i for i in ids if i in body and i != r["id"]][:max_links]
            parts.extend(_cut(body[i], link_chars) for i in linked)
            parts.append(section)
        docs.append({"id": r["id"], "title": r.get("title", ""), "text": "\n".join(parts)})
    return docs


def _cut(text: str, chars: int | None) -> str:
    """``text`` up to ``chars`` characters, ending at a whole word when there is one."""
    if chars is None or len(text) <= chars:
        return text
    head = text[:chars]
    return head.rsplit(None, 1)[0] if " " in head.strip() else head


def load_documents(source: str | Path, text_field: str = "text", split: str = "train", max_links: int | None = None,
                   link_chars: int | None = None) -> list[dict[str, Any]]:
    """Documents as ``{"id", "text"}`` dicts from a directory, a .jsonl, or a local HF dataset name
    (``max_links``, ``link_chars``: see :func:`build_linked_context`)."""
    path = Path(source)
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise CorpusError(f"directory {path} has no .txt files")
        return [{"id": f.stem, "text": f.read_text(encoding="utf-8")} for f in files]
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise CorpusError(f"corpus file {path} does not exist")
        rows = read_jsonl(path)
        if rows and "sections" in rows[0]:
            return build_linked_context(rows, max_links, link_chars)
        for n, r in enumerate(rows):
            if text_field not in r:
                raise CorpusError(f"{path}: record {n} has no {text_field!r} field (keys: {sorted(r)})")
        return [{"id": r.get("id", n), "text": r[text_field]} for n, r in enumerate(rows)]
    if path.exists():
        raise CorpusError(f"{path}: expected a directory of .txt files or a .jsonl file")
    try:
        import datasets
    except ImportError:
        raise CorpusError(f"{source!r} is not a file or directory, and the 'datasets' package is not "
                          "installed to load it as a dataset name") from None
    try:
        ds = datasets.load_dataset(str(source), split=split)
    except Exception as exc:  # offline or unknown name
        raise CorpusError(f"cannot load dataset {source!r} (split {split!r}) from the local cache: {exc}") from None
    return [{"id": n, "text": r[text_field]} for n, r in enumerate(ds)]
