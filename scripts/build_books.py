#!/usr/bin/env python
"""``ltm-gym build-books`` from a checkout: a thin wrapper of :mod:`ltm_gym.cli.maintenance.build_books` (``--help`` says what it does)."""

from ltm_gym.cli.maintenance.build_books import main
from ltm_gym.core.errors import run_main

if __name__ == "__main__":
    run_main(main)
