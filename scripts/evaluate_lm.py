#!/usr/bin/env python
"""``ltm-gym evaluate-lm`` from a checkout: a thin wrapper of :mod:`ltm_gym.cli.evaluate_lm` (``--help`` says what it does)."""

from ltm_gym.cli.evaluate_lm import main
from ltm_gym.core.errors import run_main

if __name__ == "__main__":
    run_main(main)
