"""Public-domain book text, split into sentences: the background text of the bAbI-in-books tasks.

The package ships Jane Austen's six novels (``austen.json.gz``: a mapping book -> sentences), built
by ``ltm-gym build-books`` from Debian's ``r-cran-janeaustenr`` (its R lazy-load database, read
with PyPI's ``rdata``; ``make books`` downloads the package and rebuilds the file). Books are split
between train, validation and test documents, as BABILong draws each split's background from its
own books, so a test document never shows a sentence an agent was trained on.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from functools import lru_cache
from pathlib import Path
from ltm_gym.core.errors import UserError

SHIPPED_BOOKS = Path(__file__).resolve().parent / "austen.json.gz"
BOOK_SPLITS = {"train": ("emma", "mansfieldpark", "prideprejudice", "sensesensibility"),
               "validation": ("northangerabbey",), "test": ("persuasion",)}
"""The books whose sentences each split's documents draw (by default)."""

_BOUNDARY = re.compile(r"(?<!\bMr\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bSt\.)(?<=[.!?])\s+(?=[\"'_A-Z])")


def split_sentences(text: str) -> list[str]:
    """Sentences of running text: cut after ``.``, ``!`` or ``?`` before a capital or a quote
    (not after Mr., Mrs., Dr., St.); white space collapsed."""
    text = " ".join(text.split())
    return [s for s in _BOUNDARY.split(text) if s]


@lru_cache(maxsize=4)
def load_books(path: str | Path | None = None) -> dict[str, tuple[str, ...]]:
    """Book name -> its sentences, from a ``.json.gz`` written by :func:`write_books` (default:
    the shipped novels)."""
    path = Path(path) if path is not None else SHIPPED_BOOKS
    if not path.is_file():
        raise FileNotFoundError(f"book text {path} is missing; rebuild it with `ltm-gym build-books` (make books)")
    data = json.loads(gzip.decompress(path.read_bytes()))
    return {name: tuple(sentences) for name, sentences in data.items()}


def book_sentences(books: tuple[str, ...], path: str | Path | None = None) -> list[str]:
    """The sentences of ``books``, in order (an unknown book is an error naming the known ones)."""
    known = load_books(path)
    missing = [b for b in books if b not in known]
    if missing:
        raise UserError(f"book {missing[0]!r} is not in the book text; books: {', '.join(sorted(known))}")
    return [s for b in books for s in known[b]]


def write_books(books: dict[str, list[str]], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(json.dumps(books, ensure_ascii=False).encode(), 9, mtime=0))
    return out


def read_janeaustenr(package_dir: str | Path) -> dict[str, list[str]]:
    """The six novels of an unpacked ``r-cran-janeaustenr`` (its ``data/Rdata.rdb``/``.rdx``, an R
    lazy-load database: a gzip-compressed index of (offset, length) per object, each object a
    4-byte length and zlib-compressed R serialization) as book -> sentences."""
    import rdata

    found = sorted(Path(package_dir).rglob("janeaustenr/data/Rdata.rdx"))
    if not found:
        raise FileNotFoundError(f"no janeaustenr/data/Rdata.rdx under {package_dir} (unpack r-cran-janeaustenr there)")
    index_file = found[0]
    index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(index_file.read_bytes())))
    database = index_file.with_suffix(".rdb").read_bytes()
    books = {}
    for name, (offset, length) in index["variables"].items():
        blob = database[int(offset) + 4 : int(offset) + int(length)]
        lines = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(blob)))
        books[str(name)] = split_sentences(" ".join(str(line) for line in lines))
    return books
