"""A hub dataset without the hub, through `m1bench run`: a hub that cannot be reached is one line naming
the dataset, the revision and --data; with HF_HUB_OFFLINE=1 a dataset `datasets` prepared in the cache
is read at its commit, and that commit is recorded. The hub and offline settings are read when
huggingface_hub is imported, so the CLI runs in a child process."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from m1bench.harness.bench.stub_server import StubServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
ROWS = [{"id": f"2024-I-{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(3)]


def m1bench(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m1bench.harness.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def error_line(out: subprocess.CompletedProcess) -> str:
    """The run's one error line (stderr also carries the run's header line)."""
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1 and "Traceback" not in out.stderr, out.stderr
    return errors[0]


def config(tmp_path: Path, data: str, revision: str | None = None) -> Path:
    path = tmp_path / "hub.toml"
    pin = f'revision = "{revision}"\n' if revision else ""
    path.write_text(f'[run]\noutput_dir = "{tmp_path / "run"}"\n[suites.aime2024]\ndata = "{data}"\n{pin}samples = 1\n')
    return path


def fill_cache(cache: Path, dataset_id: str, commit: str) -> None:
    """What `load_dataset(dataset_id, revision=commit)` leaves in HF_DATASETS_CACHE, made without the hub:
    `datasets` prepares the rows under the dataset's name, then the tree moves to the <namespace>___<name>
    folder a hub download prepares into (the builder refuses local files under a hub repo_id)."""
    from datasets.packaged_modules.json.json import Json

    namespace, name = dataset_id.split("/")
    rows = cache.parent / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    Json(cache_dir=str(cache), dataset_name=name, config_id="default", hash=commit,
         data_files={"train": str(rows)}).download_and_prepare()
    shutil.move(cache / name, cache / f"{namespace}___{name}")


@pytest.mark.parametrize("revision", [None, "v1.0", COMMIT])
def test_an_unreachable_hub_is_one_line_naming_dataset_revision_and_data(tmp_path, revision):
    closed = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_CACHE": str(tmp_path / "hub"),
              "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    out = m1bench(["run", str(config(tmp_path, "org/tiny_aime", revision)), "--endpoint", "http://127.0.0.1:9/v1",
                   "--model", "m"], closed)
    line = error_line(out)
    assert f"org/tiny_aime (revision {revision or 'main'})" in line and "--data" in line and "cannot be reached" in line


def test_offline_without_a_cache_is_one_line(tmp_path):
    offline = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_DATASETS_CACHE": str(tmp_path / "ds")}
    out = m1bench(["run", str(config(tmp_path, "org/tiny_aime")), "--endpoint", "http://127.0.0.1:9/v1",
                   "--model", "m"], offline)
    line = error_line(out)
    assert "org/tiny_aime (revision main)" in line and "not in the local cache" in line and "--data" in line


@pytest.mark.parametrize("revision", [None, COMMIT])
def test_a_cached_dataset_runs_offline_at_its_commit(tmp_path, revision):
    cache = tmp_path / "datasets"
    fill_cache(cache, "org/tiny_aime", COMMIT)
    offline = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_DATASETS_CACHE": str(cache)}
    with StubServer(lambda body: {"content": "The answer is \\boxed{2}."}) as stub:
        out = m1bench(["run", str(config(tmp_path, "org/tiny_aime", revision)), "--endpoint", stub.url,
                       "--model", "stub"], offline)
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "run" / "results.json").read_text())["suites"]["aime2024"]["data"]
    assert data["source"] == "org/tiny_aime" and data["revision"] == COMMIT and data["rows"] == len(ROWS)


def test_offline_at_an_uncached_commit_names_it(tmp_path):
    cache = tmp_path / "datasets"
    fill_cache(cache, "org/tiny_aime", COMMIT)
    other = "f" * 40
    offline = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_DATASETS_CACHE": str(cache)}
    out = m1bench(["run", str(config(tmp_path, "org/tiny_aime", other)), "--endpoint", "http://127.0.0.1:9/v1",
                   "--model", "m"], offline)
    line = error_line(out)
    assert f"org/tiny_aime (revision {other})" in line and "not prepared" in line and "--data" in line
