"""Benchmarks for lien (`make bench`): figures and ratios measured in one run, never timed unit tests."""
