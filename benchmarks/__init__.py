"""Benchmarks: measured figures with ratios against baselines (see `python -m benchmarks.run --help`)."""
