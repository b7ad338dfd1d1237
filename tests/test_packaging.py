"""The built wheel holds every package folder of the repository and the data the code reads at
run time: build it and look (a folder missing from a hand-kept package list once shipped a wheel
without a whole suite family)."""
import subprocess
import sys
import zipfile

import pytest

from tests.support import REPO

CODE_DIRS = ("harness", "kernels", "model", "suites", "reports")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("m1bench-*.whl")
    return zipfile.ZipFile(path).namelist()


def test_every_package_folder_is_in_the_wheel(wheel):
    folders = sorted(p.parent.relative_to(REPO).as_posix() for d in CODE_DIRS for p in (REPO / d).rglob("__init__.py"))
    missing = [f for f in folders if f"m1bench/{f}/__init__.py" not in wheel]
    assert folders and missing == []
    assert not any(name.startswith(("m1bench/tests/", "tests/")) for name in wheel)


def test_the_wheel_carries_the_data_the_code_reads(wheel):
    for name in ("m1bench/reports/schema/report.v1.schema.json", "m1bench/reports/paper/m1_table2.json",
                 "m1bench/harness/eval/configs/demo.toml", "m1bench/harness/eval/configs/paper.toml",
                 "m1bench/suites/aime/demo.jsonl", "m1bench/suites/livecodebench/demo.jsonl"):
        assert name in wheel, name
