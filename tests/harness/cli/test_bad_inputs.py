"""Every malformed model file, config, data row and run config, through the `m1bench` command: exit
status 2, one `error:` line naming the file (and line or field), maybe one `hint:` line after it,
no traceback; `--debug` or M1BENCH_DEBUG=1 shows the traceback instead."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from m1bench.harness.cli import BAD_INPUT_EXIT, main
from m1bench.model.checkpoint import INDEX, load_model, save_checkpoint
from tests.support import REPO

AIME_ROWS = REPO / "suites/aime/demo.jsonl"


def error_lines(err: str) -> list[str]:
    """stderr from its `error:` line on (a command may print progress before it)."""
    lines = err.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(starts) == 1, err
    return lines[starts[0]:]


def assert_one_line(err: str, *names: str, hint: bool | None = False) -> str:
    """hint: True a `hint:` line follows, False none does, None either (see RUN_CASES)."""
    assert "Traceback" not in err, err
    lines = error_lines(err)
    has_hint = len(lines) == 2 and lines[1].startswith("hint: ")
    assert len(lines) == 1 or has_hint, lines
    assert hint is None or has_hint == hint, lines
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def run_cli(argv, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == BAD_INPUT_EXIT, capsys.readouterr()
    return capsys.readouterr().err


# ---- model files -------------------------------------------------------------------------------
def _config(field, value):
    def edit(d):
        raw = json.loads((d / "config.json").read_text())
        if value is KeyError:
            del raw[field]
        else:
            raw[field] = value
        (d / "config.json").write_text(json.dumps(raw))
    return edit


def _tensors(fn):
    def edit(d):
        state = load_file(d / "model.safetensors")
        fn(state)
        save_file(state, d / "model.safetensors", metadata={"format": "pt"})
    return edit


def _write(name, text):
    return lambda d: (d / name).write_text(text)


def _truncate(size):
    def edit(d):
        with open(d / "model.safetensors", "r+b") as f:
            f.truncate(size if size >= 0 else (d / "model.safetensors").stat().st_size + size)
    return edit


def _shard_missing(d):
    save_checkpoint(load_model(d), d, max_shard_bytes=400_000)
    (d / "model.safetensors").unlink()
    sorted(d.glob("model-*.safetensors"))[1].unlink()


MODEL_CASES = {
    # id: (how the checkpoint is spoilt, what the error line names)
    "config-not-json": (_write("config.json", "{\n  oops\n}"), ["config.json:2: invalid JSON"]),
    "config-int-field-wrong-type": (_config("hidden_size", "64"), ["config.json: field 'hidden_size' must be an integer"]),
    "config-float-field-wrong-type": (_config("rope_theta", "big"), ["config.json: field 'rope_theta' must be a number"]),
    "config-list-field-wrong-type": (_config("attn_type_list", "LLLS"), ["config.json: field 'attn_type_list'"]),
    "config-missing-field": (_config("vocab_size", KeyError), ["config.json: required field 'vocab_size' is missing"]),
    "unexpected-tensor": (_tensors(lambda s: s.update({"model.bogus.weight": torch.zeros(2)})),
                          ["model.safetensors: unexpected tensor 'model.bogus.weight'"]),
    "missing-tensor": (_tensors(lambda s: s.pop("lm_head.weight")), ["missing tensor 'lm_head.weight'"]),
    "misshaped-tensor": (_tensors(lambda s: s.update({"lm_head.weight": torch.zeros(3, 64)})),
                         ["model.safetensors: tensor 'lm_head.weight' has shape (3, 64)"]),
    "truncated-header": (_truncate(100), ["model.safetensors: not a complete safetensors file (100 bytes"]),
    "truncated-data": (_truncate(-1000), ["model.safetensors: not a complete safetensors file", "not fully covered"]),
    "empty-safetensors": (_truncate(0), ["model.safetensors: not a complete safetensors file (0 bytes"]),
    "shard-missing": (_shard_missing, ["model-00002-of-", "shard listed in model.safetensors.index.json is missing"]),
    "index-not-json": (_write(INDEX, "{"), [f"{INDEX}:1: invalid JSON"]),
    "index-without-weight-map": (_write(INDEX, "{}"), [f"{INDEX}: field 'weight_map'"]),
    "tokenizer-missing": (lambda d: (d / "tokenizer.json").unlink(), ["tokenizer.json: missing"]),
    "tokenizer-not-json": (_write("tokenizer.json", "{x"), ["tokenizer.json: not a tokenizer", "line 1"]),
    "tokenizer-config-not-json": (_write("tokenizer_config.json", "[1,"), ["tokenizer_config.json:1: invalid JSON"]),
    "tokenizer-eos-unknown": (_write("tokenizer_config.json", '{"eos_token": "<nope>"}'),
                              ["tokenizer_config.json: eos token '<nope>' is not in the tokenizer's vocabulary"]),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_a_spoilt_checkpoint_is_one_line_naming_the_file(case, tiny_dir, tmp_path, capsys):
    spoil, names = MODEL_CASES[case]
    d = shutil.copytree(tiny_dir, tmp_path / "ckpt")
    spoil(d)
    err = run_cli(["generate", "--model", str(d), "--prompt", "hi", "--max-new-tokens", "1"], capsys)
    assert_one_line(err, str(d), *names)
    if case.startswith("config"):
        assert_one_line(run_cli(["model", "info", str(d)], capsys), str(d), *names)
        assert_one_line(run_cli(["serve", "--model", str(d), "--engine", "embedded"], capsys), str(d), *names)


def test_a_missing_checkpoint_directory_says_how_to_make_one(tmp_path, capsys):
    for argv in (["model", "info", str(tmp_path / "nope")], ["generate", "--model", str(tmp_path / "nope"), "--prompt", "x"]):
        assert_one_line(run_cli(argv, capsys), f"{tmp_path / 'nope'}: no such checkpoint directory", hint=True)


def test_a_missing_prompt_file_and_a_spoilt_state_file(tiny_dir, tmp_path, capsys):
    assert_one_line(run_cli(["generate", "--model", str(tiny_dir), "--prompt-file", str(tmp_path / "none.txt")], capsys),
                    f"{tmp_path / 'none.txt'}: No such file or directory")
    (tmp_path / "p.txt").write_text("hello " * 20)
    (tmp_path / "s.state").write_bytes(b"\x00" * 12)
    assert_one_line(run_cli(["generate", "--model", str(tiny_dir), "--prompt-file", str(tmp_path / "p.txt"),
                             "--resume-state", str(tmp_path / "s.state"), "--max-new-tokens", "1"], capsys),
                    f"{tmp_path / 's.state'}: not a complete safetensors file")


# ---- run configs and data ------------------------------------------------------------------------
# `m1bench run` prints the error line itself (harness/cli/run.py), without the hint the CLI entry adds
RUN_CASES = {
    # id: (run.toml, extra files, what the error line names)
    "toml-syntax": ('[run]\nname = "x"\n[model\n', {}, ["run.toml:3:7: invalid TOML"]),
    "unknown-key": ('[run]\nbogus = 1\n[suites.aime2024]\n', {}, ["run.toml: config key run.bogus: unknown key"]),
    "wrong-type": ('[run]\nconcurrency = "8"\n[suites.aime2024]\n', {},
                   ["run.toml: config key run.concurrency: expected int, got str '8'"]),
    "unknown-suite": ("[suites.nosuch]\n", {}, ["run.toml: config key suites.nosuch: unknown suite"]),
    "data-bad-line": ('[suites.aime2024]\ndata = "rows.jsonl"\n',
                      {"rows.jsonl": AIME_ROWS.read_text().splitlines()[0] + '\n{"id": \n'},
                      ["rows.jsonl:2: invalid JSON"]),
    "data-row-missing-field": ('[suites.aime2024]\ndata = "rows.jsonl"\n', {"rows.jsonl": '{"id": "p1", "answer": "3"}\n'},
                               ["rows.jsonl", "no problem column"]),
    "data-file-missing": ('[suites.aime2024]\ndata = "none.jsonl"\n', {}, ["none.jsonl: no such file"]),
}


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_a_bad_run_config_or_data_row_is_one_line_naming_it(case, tiny_dir, tmp_path, monkeypatch, capsys):
    toml, files, names = RUN_CASES[case]
    monkeypatch.chdir(tmp_path)  # paths as a user types them: relative to here
    (tmp_path / "run.toml").write_text(toml)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert_one_line(run_cli(["run", "run.toml", "--model", str(tiny_dir), "-o", "out"], capsys), *names, hint=None)


def test_a_key_a_flag_set_is_named_without_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text("[run]\nconcurrency = 8\n[suites.aime2024]\n")
    line = assert_one_line(run_cli(["run", "run.toml", "--concurrency", "0"], capsys),
                           "config key run.concurrency: 0 must be >= 1", hint=None)
    assert "run.toml" not in line
    line = assert_one_line(run_cli(["run", "--suite", "nosuch"], capsys), "config key suites.nosuch: unknown suite", hint=None)
    assert "demo.toml" not in line


def test_suites_with_an_unknown_name(capsys):
    assert_one_line(run_cli(["suites", "nosuch"], capsys), "suite 'nosuch': no such suite", "aime2024")


# ---- the console script: exit status, stderr, --debug ----------------------------------------------
def m1bench(*argv, env=None):
    return subprocess.run([sys.executable, "-m", "m1bench.harness.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_the_command_prints_one_line_and_debug_shows_the_traceback(tiny_dir, tmp_path):
    d = shutil.copytree(tiny_dir, tmp_path / "ckpt")
    _truncate(0)(d)
    done = m1bench("generate", "--model", str(d), "--prompt", "hi")
    assert done.returncode == BAD_INPUT_EXIT and done.stdout == ""
    assert_one_line(done.stderr, f"{d / 'model.safetensors'}: not a complete safetensors file (0 bytes")
    for debug in (m1bench("--debug", "generate", "--model", str(d), "--prompt", "hi"),
                  m1bench("generate", "--model", str(d), "--prompt", "hi", "--debug"),
                  m1bench("generate", "--model", str(d), "--prompt", "hi", env={"M1BENCH_DEBUG": "1"})):
        assert debug.returncode != 0 and "Traceback" in debug.stderr and "CheckpointError: " in debug.stderr


def test_the_command_names_a_toml_line(tmp_path):
    (tmp_path / "run.toml").write_text('[run]\nname = "x"\n[model\n')
    done = subprocess.run([sys.executable, "-m", "m1bench.harness.cli", "run", "run.toml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == BAD_INPUT_EXIT
    assert_one_line(done.stderr, "run.toml:3:7: invalid TOML", hint=None)
