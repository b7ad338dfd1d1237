"""Profiling: architecture specs, analytic and counted FLOPs, latency (model, kernel, server), plots."""
