"""The `m1bench` command line: help on every subcommand (defaults, subcommands, no torch), model
init/info, generate, suites, demo."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from m1bench.harness.cli import COMMANDS, HelpFormatter, build_parser, main


def subcommand_paths(parser, prefix=()):
    for name, sub in subparsers(parser).items():
        yield (*prefix, name)
        yield from subcommand_paths(sub, (*prefix, name))


def subparsers(parser) -> dict:
    return next((a.choices for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"), {})


def parser_at(path):
    parser = build_parser()
    for name in path:
        parser = subparsers(parser)[name]
    return parser


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


def test_demo_scores_the_gate_model_with_readable_text_and_says_what_next(tmp_path, capsys):
    """The demo's model learned its task: the greedy generation is the answer, the run scores it
    (as the committed baseline does), and the demo ends with the report and commands to try."""
    main(["demo", "--output", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert "model facts (tiny-gate)" in out and "\\boxed{42}\n" in out  # the generation, as text
    assert re.search(r"Repeat this number: \d\d -> \\boxed\{\d\d\}  \(correct\)", out)
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["suites"]["aime2024"]["metrics"]
    assert next(m for m in metrics if m["metric"] == "avg@2")["value"] > 0.9
    report = re.search(r"^report: (\S+report\.html)", err, re.M)
    assert report and Path(report[1]).exists()
    assert out.rstrip().endswith("--model MiniMax-M1-80k") and f"m1bench compare " in out and "m1bench suites" in out
    # what the scores cost: the budget and FLOPs curves and the counterfactual table, in the demo's report
    here = Path(report[1]).parent
    assert (here / "plots" / "budget_curve.png").stat().st_size > 5000 and (here / "plots" / "flops_curve.png").exists()
    assert re.search(r"this aime2024 run: tiny-gate = [\d.]+% of deepseek-r1's FLOPs", (here / "report.md").read_text())
    main(["profile", "flops", "--from-run", str(tmp_path / "run"), "--points", "9", "--out", str(tmp_path / "f")])
    assert json.loads((tmp_path / "f.json").read_text())["run"]["generated_tokens"]["aime2024"]


def test_suites_lists_every_suite_with_its_options_and_defaults(capsys):
    from m1bench.suites import get_suite, suite_names
    from m1bench.suites.base import COMMON_OPTIONS

    main(["suites"])
    out = capsys.readouterr().out
    for name in suite_names():
        suite = get_suite(name)
        block = out.split(f"\n{name}: version {suite.version}, default samples (k) {suite.default_samples}")[1]
        block = block.split("\n\n")[0]  # up to the next suite
        for option, opt in suite.options.items():
            setting = f"{option} (unset)" if opt.default is None else f"{option} = {json.dumps(opt.default)}"
            assert f"\n  {setting} " in block, (name, setting)
    assert all(f"\n  {option} (unset) " in out for option in COMMON_OPTIONS)


def test_every_option_with_a_default_shows_it_in_its_help():
    """Walks every (sub)command: an option with a default renders that default in its own help
    line (auto-added as "(default: X)", or said in the help's own words)."""
    for path in subcommand_paths(build_parser()):
        parser = parser_at(path)
        for action in parser._actions:
            if not HelpFormatter._has_default(action):
                continue
            formatter = parser._get_formatter()
            formatter.add_argument(action)
            line = " ".join(formatter.format_help().split())
            said = "default" in (action.help or "")  # in the help's own words, e.g. "(default 300,37)"
            assert "default" in line and (said or f"default: {action.default}" in line), (path, action.dest, line)


def test_every_parent_help_lists_its_subcommands(capsys):
    for path in [(), *subcommand_paths(build_parser())]:
        names = subparsers(parser_at(path))
        if not names:
            continue
        with pytest.raises(SystemExit):
            main([*path, "--help"])
        out = capsys.readouterr().out
        assert all(re.search(rf"^ +{re.escape(n)}\b", out, re.M) for n in names), (path, names)
    assert "replot" in subparsers(parser_at(("profile",)))


@pytest.mark.parametrize("command", COMMANDS)
def test_help_imports_no_torch(command):
    """--help stays well under a second: it imports no torch (about 2-4 s of the 5 s `model --help` took)."""
    code = (f"import sys\nfrom m1bench.harness.cli import main\ntry:\n    main([{command!r}, '--help'])\n"
            "except SystemExit:\n    pass\nprint('TORCH', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "usage: m1bench" in out.stdout, out.stderr
    assert "TORCH False" in out.stdout


def test_every_help_states_its_defaults_and_run_lists_the_suites(capsys):
    """Each option with a default says it in --help (none says "default: None"); `run --help`
    lists every suite with its version."""
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
