"""The `m1bench` command line: help on every subcommand, model init/info, generate, demo."""
import subprocess
import sys

import pytest

from m1bench.harness.cli import build_parser, main


def subcommand_paths(parser, prefix=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from subcommand_paths(sub, (*prefix, name))


def test_every_subcommand_has_help(capsys):
    paths = list(subcommand_paths(build_parser()))
    assert {("model", "init"), ("model", "info"), ("generate",), ("demo",)} <= set(paths)
    for path in paths:
        with pytest.raises(SystemExit) as done:
            main([*path, "--help"])
        assert done.value.code == 0
        assert "usage: m1bench" in capsys.readouterr().out


def test_help_lists_every_command_without_importing_the_commands():
    """`m1bench --help` builds the command list only: no torch, matplotlib or command module is
    imported for it (that import is what made it take seconds)."""
    code = ("import sys\nfrom m1bench.harness.cli import COMMANDS, main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nheavy = [m for m in ('torch', 'matplotlib', 'transformers', *{m for m, _ in "
            "COMMANDS.values()}) if m in sys.modules]\nprint('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert all(f"    {name}" in out.stdout for name in ("model", "run", "serve", "profile", "compare", "rl"))


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "m1bench.harness.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "m1bench" in out.stdout


def test_init_info_generate(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("M1BENCH_HOME", str(tmp_path))
    main(["model", "init"])
    assert (tmp_path / "tiny" / "model.safetensors").exists()
    main(["model", "info"])
    out = capsys.readouterr().out
    assert "3 L + 1 S: LLLS" in out and "411,392" in out
    main(["generate", "--prompt", "hi", "--max-new-tokens", "5", "--temperature", "0"])
    assert "5 generated tokens" in capsys.readouterr().out
    main(["model", "info", "--preset", "m1"])
    assert "456,089,655,296" in capsys.readouterr().out


def test_demo_creates_tiny_and_runs_the_embedded_evaluation(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("M1BENCH_HOME", str(tmp_path))
    main(["demo", "--max-new-tokens", "4", "--output", str(tmp_path / "run")])
    out = capsys.readouterr()
    assert (tmp_path / "tiny" / "config.json").exists() and "model facts" in out.out and "4 generated tokens" in out.out
    assert (tmp_path / "run" / "records.jsonl").exists() and (tmp_path / "run" / "results.json").exists()


def test_every_help_states_its_defaults_and_run_lists_the_suites(capsys):
    """Each option with a default says it in --help (none says "default: None"); `run --help`
    lists every suite with its version."""
    from m1bench.harness.cli import HelpFormatter
    from m1bench.suites import suite_names

    for path in subcommand_paths(build_parser()):
        with pytest.raises(SystemExit):
            main([*path, "--help"])
        out = capsys.readouterr().out
        assert "default: None" not in out and "(default: False)" not in out, path
    parser = build_parser("run")
    run = parser._subparsers._group_actions[0].choices["run"]
    for action in run._actions:
        if HelpFormatter._has_default(action):
            assert "default" in HelpFormatter(prog="x")._get_help_string(action), action.dest
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "(default: the config's, else 1.0)" in out and all(f"  {name} " in out for name in suite_names())
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "default: 8000" in capsys.readouterr().out
