"""LiveCodeBench code generation."""
from m1bench.suites.livecodebench import suite  # noqa: F401  (registers the suite)
