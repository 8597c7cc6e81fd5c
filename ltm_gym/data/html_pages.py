"""A directory of linked HTML pages (a manual, a FAQ, a help system) -> linked-context records.

Each page becomes one record ``{"id", "title", "sections", "links"}`` (the format
:func:`~ltm_gym.data.loaders.build_linked_context` reads): its body text cut at every heading
(``h1`` .. ``h4``) into sections, and per section the pages of the same directory tree its links
point to. Navigation (headers, footers, tables of contents, side bars), scripts and styles are left
out, and so are links to the page itself, to other sites and to files that are not pages of the tree.

Debian ships such manuals offline: ``gimp-help-en`` (``/usr/share/gimp/2.0/help/en``),
``gimp-help-ru``, ``debian-faq-ru``, ``developers-reference-ru``; ``ltm-gym build-linked-corpus``
turns one into a ``.jsonl`` that a study's ``corpus.source`` names.
"""

from __future__ import annotations

import json
import posixpath
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import unquote, urlsplit

from .loaders import CorpusError

HEADINGS = {"h1", "h2", "h3", "h4"}
BLOCKS = HEADINGS | {"p", "div", "li", "dt", "dd", "pre", "tr", "table", "ul", "ol", "dl", "br", "blockquote",
                     "section", "h5", "h6", "td", "th"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
SKIP_TAGS = {"script", "style", "head", "noscript", "nav", "header", "footer"}
SKIP_CLASSES = {"navheader", "navfooter", "toc", "list-of-figures", "list-of-tables", "list-of-examples",
                "sphinxsidebar", "related", "breadcrumbs", "footer", "header", "navigation"}
"""Elements with one of these classes hold navigation, not the page's text."""
PAGE_SUFFIXES = (".html", ".htm")


class _PageParser(HTMLParser):
    """Collects a page's title, its sections' text and the hrefs each section links to."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.sections: list[list[str]] = [[]]
        self.hrefs: list[list[str]] = [[]]
        self._stack: list[tuple[str, bool]] = []       # open elements: (tag, skipped)
        self._in_title = False
        self._pre = 0

    @property
    def _skipping(self) -> bool:
        return any(skip for _, skip in self._stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "title":
            self._in_title = True
        if tag in HEADINGS and not self._skipping and any(s.strip() for s in self.sections[-1]):
            self.sections.append([])
            self.hrefs.append([])
        if tag in BLOCKS and not self._skipping:
            self.sections[-1].append("\n")
        if tag == "a" and a.get("href") and not self._skipping:
            self.hrefs[-1].append(a["href"] or "")
        if tag in VOID:
            return
        classes = set((a.get("class") or "").split())
        self._stack.append((tag, tag in SKIP_TAGS or bool(classes & SKIP_CLASSES)))
        if tag == "pre":
            self._pre += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCKS and not self._skipping:
            self.sections[-1].append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in VOID or all(t != tag for t, _ in self._stack):
            return
        while self._stack:
            t, _ = self._stack.pop()
            if t == "pre":
                self._pre -= 1
            if t == tag:
                break
        if tag in BLOCKS and not self._skipping:
            self.sections[-1].append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skipping:
            return
        self.sections[-1].append(data if self._pre else re.sub(r"\s+", " ", data))


def _clean(parts: list[str]) -> str:
    """One section's text: lines stripped, runs of blank lines and spaces collapsed."""
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in "".join(parts).split("\n")]
    return "\n".join(line for line in lines if line)


def page_id(root: Path, path: Path) -> str:
    """A page's id: its path under ``root`` (POSIX separators)."""
    return path.relative_to(root).as_posix()


def _target(href: str, page: str) -> str | None:
    """The page id an href of page ``page`` points to, or None (another site, mail, an anchor only)."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path)))
    return None if path.startswith("..") else path


def parse_page(html: str, pid: str, pages: set[str] | None = None) -> dict[str, Any]:
    """One page as a linked-context record; ``pages``: the ids links may point to (None: any page)."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    sections, links = [], []
    heading, heading_links = "", []                 # a section that is only its heading joins the next
    for parts, hrefs in zip(parser.sections, parser.hrefs):
        text = _clean(parts)
        targets = heading_links + [t for t in map(lambda h: _target(h, pid), hrefs)
                                   if t and t != pid and t.endswith(PAGE_SUFFIXES) and (pages is None or t in pages)]
        targets = list(dict.fromkeys(targets))
        if text and "\n" not in text:
            heading, heading_links = (heading + "\n" + text).strip(), targets
            continue
        if text:
            sections.append((heading + "\n" + text).strip())
            links.append(targets)
            heading, heading_links = "", []
        elif links:                                  # an empty section's links go to the one before
            links[-1].extend(t for t in targets if t not in links[-1])
    if heading:
        sections.append(heading)
        links.append(heading_links)
    return {"id": pid, "title": " ".join(parser.title.split()), "sections": sections, "links": links}


def read_pages(root: str | Path, encoding: str = "utf-8") -> list[dict[str, Any]]:
    """Every page under ``root`` (``.html``/``.htm``, sorted by path) with text, as records."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"HTML directory {root} does not exist (for a Debian manual: apt-get install it, or "
                          "apt-get download it and unpack it with dpkg -x)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in PAGE_SUFFIXES and p.is_file())
    if not files:
        raise CorpusError(f"directory {root} holds no .html pages")
    ids = {page_id(root, f) for f in files}
    records = []
    for f in files:
        rec = parse_page(f.read_text(encoding=encoding, errors="replace"), page_id(root, f), ids)
        if rec["sections"]:
            records.append(rec)
    return records


def write_records(records: Iterable[dict[str, Any]], out: str | Path) -> int:
    """Write records as JSON lines (atomically); the number written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(out)
    return n
