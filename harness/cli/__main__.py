"""`python -m m1bench.harness.cli` is the `m1bench` command."""
from m1bench.harness.cli import main

main()
