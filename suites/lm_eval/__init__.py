"""lm-evaluation-harness tasks through m1bench's clients."""
from m1bench.suites.lm_eval import suite  # noqa: F401  (registers the suite)
