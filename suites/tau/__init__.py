"""TAU-bench: tau-airline, tau-retail and tau-custom."""
from m1bench.suites.tau import suite  # noqa: F401  (registers the suites)
