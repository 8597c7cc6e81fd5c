"""Turn a directory of linked HTML pages (a manual, a FAQ, a help system) into the linked-context
records a study's ``corpus.source`` reads: one record per page, its text cut at every heading into
sections, each section with the pages it links to (ltm_gym/data/html_pages.py). Nothing downloads:
the pages come from an installed or unpacked package, e.g. Debian's offline manuals:

  apt-get download gimp-help-en && dpkg -x gimp-help-en_*.deb data/debian/gimp-help-en
  ltm-gym build-linked-corpus data/debian/gimp-help-en/usr/share/gimp/2.0/help/en data/gimp-help-en.jsonl

(`make natural-corpus` runs both; with the package installed the pages are under /usr/share.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltm_gym.core.errors import run_main
from ltm_gym.data.html_pages import read_pages, write_records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html_dir", type=Path, help="the directory of .html pages (searched recursively)")
    parser.add_argument("out", type=Path, help="the .jsonl to write (its directory is created)")
    parser.add_argument("--encoding", default="utf-8", help="the pages' encoding (default: utf-8)")
    args = parser.parse_args(argv)
    if args.out.suffix != ".jsonl":
        parser.error(f"out={args.out} must end in .jsonl (the loader reads linked-context records from .jsonl)")
    records = read_pages(args.html_dir, args.encoding)
    n = write_records(records, args.out)
    sections = sum(len(r["sections"]) for r in records)
    links = sum(len(ids) for r in records for ids in r["links"])
    chars = sum(len(s) for r in records for s in r["sections"])
    print(f"{args.out}: {n} pages, {sections} sections, {links} links between pages, {chars / 1e6:.2f} M characters")


if __name__ == "__main__":
    run_main(main)
