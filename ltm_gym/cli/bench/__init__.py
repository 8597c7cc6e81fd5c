"""Benchmarks: each prints a ratio against a reference measured in the same run (``ltm-gym bench-*``,
``scripts/bench_*.py``), and the GPU check (``make gpu-check``)."""
