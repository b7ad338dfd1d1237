"""MRCR: OpenAI-MRCR as published and a Michelangelo-style generator, one grader for both."""
from m1bench.suites.mrcr import michelangelo, openai_mrcr  # noqa: F401  (registers the suites)
