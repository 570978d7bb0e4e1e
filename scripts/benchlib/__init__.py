"""Shared parts of scripts/benchmark.py and scripts/benchmark_gpu.py: paired ratios with confidence intervals."""
