"""Benchmark suites: load data, build requests, score, aggregate."""
