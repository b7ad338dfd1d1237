"""Orchestration: CLI, run config, clients, runner, profiling, reports."""
