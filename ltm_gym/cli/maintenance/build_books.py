"""Rebuild the package's book text (``ltm_gym/data/austen.json.gz``, the background text of the
bAbI-in-books tasks) from Debian's ``r-cran-janeaustenr``, unpacked, never installed:

  apt-get download r-cran-janeaustenr && dpkg -x r-cran-janeaustenr_*.deb data/debian/janeaustenr
  ltm-gym build-books data/debian/janeaustenr

(`make books` runs all three; reading the R database needs PyPI's ``rdata``.)
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from ltm_gym.core.errors import run_main
from ltm_gym.data.books import SHIPPED_BOOKS, read_janeaustenr, write_books


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package_dir", type=Path, help="the unpacked r-cran-janeaustenr package")
    parser.add_argument("--out", type=Path, default=SHIPPED_BOOKS, help=f"the file to write (default: {SHIPPED_BOOKS})")
    args = parser.parse_args(argv)
    try:
        import rdata  # noqa: F401  (only checks that it is installed)
    except ImportError:
        parser.error("reading the R database needs PyPI's rdata: pip install rdata")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # rdata: "Unknown file type: assumed RDS" for each object
        books = read_janeaustenr(args.package_dir)
    write_books(books, args.out)
    for name, sentences in books.items():
        print(f"{name}: {len(sentences)} sentences, {sum(map(len, sentences)) / 1e6:.2f} M characters")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)
