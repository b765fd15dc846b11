"""Benchmarks: each service's rate measured beside the raw rate of the same broker and
store in the same run, reported as a ratio."""
