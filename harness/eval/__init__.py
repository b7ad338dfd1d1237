"""Evaluation: run config, the resumable runner and the results built from its records."""
