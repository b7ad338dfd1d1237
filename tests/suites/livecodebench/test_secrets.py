"""A hostile LiveCodeBench answer hunts for the harness's secrets: it prints its environment and
reads ~/.netrc, the hub token and the run's config. Through `m1bench run` with a canary key set,
in the default isolation and in rlimits (where the files are readable), no canary reaches any file
the run writes: the program's environment is its own, credential files are covered, and what
still gets out is redacted (and counted) before records and reports are written."""
import json
import os
import shutil
import uuid

import pytest

from m1bench.harness.bench.stub_server import StubServer
from m1bench.harness.cli import main
from tests.support import REPO

CANARY = "sk-canary-" + uuid.uuid4().hex


def hostile_program(home, config) -> str:
    paths = [f"{home}/.netrc", f"{home}/.cache/huggingface/token", str(config)]
    # the answer also quotes the key, as a model that saw it in its context could
    return f"""```python
import os, sys
found = ["env " + ",".join(sorted(os.environ)), os.environ.get("OPENAI_API_KEY", "no key"), "{CANARY}"]
for p in {paths!r}:
    try:
        found.append(p + ": " + "".join(open(p).read().splitlines()[:1]))
    except OSError as e:
        found.append(p + ": " + type(e).__name__)
sys.stderr.write(" | ".join(found))
sys.exit(1)
```"""


@pytest.fixture
def home():
    # world-readable, as homes often are (and outside /tmp, which a namespace replaces, where the repo is)
    d = REPO / "runs" / f"test-home-{uuid.uuid4().hex[:8]}"
    (d / ".cache" / "huggingface").mkdir(parents=True)
    (d / ".netrc").write_text(f"machine api.example.com login me password {CANARY}\n")
    (d / ".cache" / "huggingface" / "token").write_text(CANARY)
    for p in (d, *d.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)
    os.chmod(REPO / "runs", 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("isolation", ["auto", "rlimits"])
def test_no_canary_in_any_file_the_run_writes(isolation, home, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("HOME", str(home))
    reports = tmp_path / "reports"
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(reports))
    config = home / "run.toml"
    out = tmp_path / "run"
    config.write_text(f'# key: {CANARY}\n[run]\noutput_dir = "{out}"\n[sampling]\nmax_tokens = 64\n'
                      f'[suites.livecodebench]\ndata = "{REPO / "suites/livecodebench/demo.jsonl"}"\n'
                      f'limit = 1\nsamples = 1\nisolation = "{isolation}"\n')
    config.chmod(0o644)
    program = hostile_program(home, config)
    with StubServer(lambda body: {"content": program}) as stub, pytest.raises(SystemExit) as done:
        main(["run", str(config), "--endpoint", stub.url, "--model", "stub"])
    assert done.value.code == 0
    (rec,) = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    leaked = rec["score"]["details"]["failure"]["stderr"]
    env = leaked.split(" | ")[0].removeprefix("env ").split(",")  # its own environment, nothing of ours
    assert set(env) <= {"HOME", "LANG", "LC_ALL", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING", "TMPDIR",
                        "PWD", "OLDPWD", "SHLVL", "_"} and " | no key | " in leaked
    written = [p for p in [*out.rglob("*"), *reports.rglob("*")] if p.is_file()]
    assert any(p.name == "samples.jsonl" for p in written)
    assert [str(p) for p in written if CANARY.encode() in p.read_bytes()] == []
    # what got out (the quoted key; the config where the program could read it) is redacted, and counted
    assert f"no key | [redacted $OPENAI_API_KEY]" in leaked and "[redacted $OPENAI_API_KEY]" in rec["completion"]["text"]
    assert "run.toml: FileNotFoundError" in leaked or "run.toml: # key: [redacted $OPENAI_API_KEY]" in leaked
    s = json.loads((out / "results.json").read_text())["suites"]["livecodebench"]
    assert s["counts"]["secrets_redacted"] >= 2
    sandbox = s["environment"]["sandbox"]
    assert ("network" in sandbox["not_contained"]) == (sandbox["isolation"] == "rlimits")  # it says so
