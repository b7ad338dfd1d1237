"""Benchmarks, each writing JSON under reports/bench/, and the stub servers they and the tests measure against."""
