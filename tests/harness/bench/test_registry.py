"""Every benchmark of the registry runs through `m1bench bench NAME`, with its own --help."""
import pytest

from m1bench.harness.bench import BENCHMARKS
from m1bench.harness.cli import main


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_each_benchmark_answers_help_through_the_cli(name, capsys):
    with pytest.raises(SystemExit) as done:
        main(["bench", name, "--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_the_bench_command_lists_the_registry(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in BENCHMARKS)
