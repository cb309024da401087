"""Benchmarks: each prints a table, compares against a baseline measured in the same run."""
