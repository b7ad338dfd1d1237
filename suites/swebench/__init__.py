"""SWE-bench Verified with an Agentless-style scaffold."""
from m1bench.suites.swebench import suite  # noqa: F401  (registers the suite)
