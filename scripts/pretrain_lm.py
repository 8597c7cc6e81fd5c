#!/usr/bin/env python
"""``ltm-gym pretrain-lm`` from a checkout: a thin wrapper of :mod:`ltm_gym.cli.pretrain_lm` (``--help`` says what it does)."""

from ltm_gym.cli.pretrain_lm import main
from ltm_gym.core.errors import run_main

if __name__ == "__main__":
    run_main(main)
