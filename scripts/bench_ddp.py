#!/usr/bin/env python
"""``ltm-gym bench-ddp`` from a checkout: a thin wrapper of :mod:`ltm_gym.cli.bench.ddp` (``--help`` says what it does)."""

from ltm_gym.cli.bench.ddp import main
from ltm_gym.core.errors import run_main

if __name__ == "__main__":
    run_main(main)
