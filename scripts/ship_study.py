#!/usr/bin/env python
"""``ltm-gym ship-study`` from a checkout: a thin wrapper of :mod:`ltm_gym.cli.maintenance.ship_study` (``--help`` says what it does)."""

from ltm_gym.cli.maintenance.ship_study import main
from ltm_gym.core.errors import run_main

if __name__ == "__main__":
    run_main(main)
