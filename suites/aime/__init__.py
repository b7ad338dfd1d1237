"""AIME 2024 / 2025."""
from m1bench.suites.aime import suite  # noqa: F401  (registers the suites)
