"""SWE-bench Verified rows as princeton-nlp publishes them (../shared/realdata: 21 real rows, one or two per
repository; FAIL_TO_PASS / PASS_TO_PASS as JSON strings; no image, eval_script, log_parser or test_cmd):
the spec the official harness needs is built for every row offline and is the one swebench's own
make_test_spec builds; a synthetic test log in each repository's format gets swebench's verdict through
m1bench's grading; and `m1bench run` takes the rows as they are in both evaluation modes, stopping with
one line where this machine lacks what a run needs (Docker, the checkouts)."""
import json
import socket

import pyarrow.parquet as pq
import pytest

from m1bench.harness.bench.stub_server import StubServer
from m1bench.harness.cli import main
from tests.support import REPO

swebench = pytest.importorskip("swebench", reason="the spec and the grading are swebench's (pip install 'm1bench[swebench]')")

ROWS = REPO.parent / "shared" / "realdata" / "swebench-verified" / "inspect_ai_all_repos_21.parquet"


@pytest.fixture(scope="module")
def rows():
    if not ROWS.exists():
        pytest.skip("../shared/realdata is not here")
    return pq.read_table(ROWS).to_pylist()


def by_id(rows, iid):
    return next(r for r in rows if r["instance_id"] == iid)


@pytest.fixture
def offline(monkeypatch):
    """No network beyond loopback: swebench's spec builders fetch requirement files from GitHub for some
    repositories, which the spec built here must not need."""
    connect = socket.socket.connect

    def refuse(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a connection to {address} while building the spec")
        return connect(sock, address)
    monkeypatch.setattr(socket.socket, "connect", refuse)


# ---- the spec -----------------------------------------------------------------------------------
def test_the_spec_builds_for_every_real_row_offline(rows, offline):
    from m1bench.suites.swebench.spec import official

    specs = {r["instance_id"]: official(r, "rows") for r in rows}
    assert len(specs) == 21 == len({r["repo"] for r in rows}) + 9  # 12 repositories
    for r in rows:
        s = specs[r["instance_id"]]
        owner, name = r["repo"].split("/")
        assert s.image == f"swebench/sweb.eval.x86_64.{owner}_1776_{name}-{r['instance_id'].rsplit('-', 1)[1]}:latest"
        assert s.eval_script.startswith("#!/bin/bash\nset -uxo pipefail\n")
        assert r["test_patch"] in s.eval_script and f"git checkout {r['base_commit']} " in s.eval_script


@pytest.mark.parametrize("iid,test_cmd,parser", [
    # swebench 4.1.0's MAP_REPO_VERSION_TO_SPECS[repo][version]["test_cmd"] + the test patch's files
    ("django__django-14373", "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 "
                             "utils_tests.test_dateformat", "parse_log_django"),
    ("sympy__sympy-23262", "PYTHONWARNINGS='ignore::UserWarning,ignore::SyntaxWarning' bin/test -C --verbose "
                           "sympy/utilities/tests/test_lambdify.py", "parse_log_sympy"),
    ("sphinx-doc__sphinx-9258", "tox --current-env -epy39 -v -- tests/test_domain_py.py", "parse_log_pytest_v2"),
    ("astropy__astropy-13977", "pytest -rA astropy/units/tests/test_quantity.py "
                               "astropy/units/tests/test_quantity_ufuncs.py", "parse_log_pytest_v2"),
    ("mwaskom__seaborn-3187", "pytest --no-header -rA tests/_core/test_plot.py tests/test_relational.py",
     "parse_log_seaborn"),
    ("psf__requests-6028", "pytest -rA tests/test_utils.py", "parse_log_pytest_options"),
])
def test_test_command_and_parser_are_the_official_specs(rows, offline, iid, test_cmd, parser):
    from m1bench.suites.swebench.spec import official

    s = official(by_id(rows, iid), "rows")
    assert (s.test_cmd, s.log_parser) == (test_cmd, parser)
    assert f"\n{test_cmd}\n" in s.eval_script


def test_the_spec_is_the_one_swebench_builds(rows, monkeypatch):
    """swebench's make_test_spec (what run_evaluation builds) gives the same eval script and image for
    every row; its environment script needs GitHub, so the two fetchers answer a stand-in here."""
    import swebench.harness.test_spec.python as py_spec
    from swebench.harness.test_spec.test_spec import make_test_spec

    from m1bench.suites.swebench.spec import official

    monkeypatch.setattr(py_spec, "get_requirements_by_commit", lambda repo, commit: "stand-in")
    monkeypatch.setattr(py_spec, "get_environment_yml_by_commit", lambda repo, commit, env: "name: testbed")
    for r in rows:
        theirs, ours = make_test_spec(r, namespace="swebench"), official(r, "rows")
        assert (ours.eval_script, ours.image) == (theirs.eval_script, theirs.instance_image_key), r["instance_id"]


# ---- grading --------------------------------------------------------------------------------------
# How each parser's framework prints one test's outcome (passed, failed).
LINES = {
    "parse_log_django": ("{} ... ok", "{} ... FAIL"),  # unittest verbosity 2
    "parse_log_sympy": ("{} ok", "{} F"),  # bin/test --verbose
}
PYTEST_LINES = ("PASSED {}", "FAILED {}")  # pytest -rA's short summary


def synthetic_log(parser, passed, failed=()):
    ok, bad = LINES.get(parser, PYTEST_LINES)
    body = [ok.format(t) for t in passed] + [bad.format(t) for t in failed]
    return "\n".join([">>>>> Applied Patch", ">>>>> Start Test Output", *body, ">>>>> End Test Output", ""])


def test_a_synthetic_log_gets_swebenchs_verdict_on_every_real_row(rows, tmp_path, offline):
    """All of FAIL_TO_PASS and PASS_TO_PASS passing is resolved; one FAIL_TO_PASS test failing, or a
    PASS_TO_PASS test missing from the log, is not. The report is the one swebench's grading gives with
    the harness's own TestSpec."""
    from swebench.harness.grading import get_eval_report

    from m1bench.suites.swebench.evaluate import grade_log, outcome
    from m1bench.suites.swebench.spec import official

    for r in rows:
        f2p, p2p = json.loads(r["FAIL_TO_PASS"]), json.loads(r["PASS_TO_PASS"])
        parser = official(r, "rows").log_parser
        cases = {"gold": (f2p + p2p, ()), "f2p_fails": (f2p[1:] + p2p, f2p[:1])}
        if p2p:
            cases["p2p_missing"] = (f2p + p2p[1:], ())
        for case, (passed, failed) in cases.items():
            log = tmp_path / f"{r['instance_id']}-{case}.txt"
            log.write_text(synthetic_log(parser, passed, failed))
            entry = grade_log(r, "diff", "m", log)
            resolved, reason = outcome(entry)
            assert resolved is (case == "gold"), (r["instance_id"], case, reason)
            if case == "f2p_fails":
                assert reason.startswith(f"FAIL_TO_PASS still failing: {f2p[0]}")
            if case == "p2p_missing":
                assert reason.startswith(f"PASS_TO_PASS broken: {p2p[0]}")
        gold = tmp_path / f"{r['instance_id']}-gold.txt"
        pred = {"instance_id": r["instance_id"], "model_name_or_path": "m", "model_patch": "diff"}
        theirs = get_eval_report(_harness_spec(r), pred, str(gold), include_tests_status=True)[r["instance_id"]]
        assert grade_log(r, "diff", "m", gold) == theirs


def _harness_spec(row):
    """The TestSpec run_evaluation grades with, its GitHub-fetched environment script stood in for."""
    import swebench.harness.test_spec.python as py_spec
    from swebench.harness.test_spec.test_spec import make_test_spec

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(py_spec, "get_requirements_by_commit", lambda repo, commit: "stand-in")
        mp.setattr(py_spec, "get_environment_yml_by_commit", lambda repo, commit, env: "name: testbed")
        return make_test_spec(row, namespace="swebench")


def test_each_repository_is_read_by_its_own_parser(rows, tmp_path):
    """A django log read as pytest output (or the reverse) finds no tests: the parser follows the repository."""
    from m1bench.suites.swebench.evaluate import grade_log

    django, flask = by_id(rows, "django__django-14373"), by_id(rows, "pallets__flask-5014")
    for row, wrong in ((django, "parse_log_pytest"), (flask, "parse_log_django")):
        tests = json.loads(row["FAIL_TO_PASS"]) + json.loads(row["PASS_TO_PASS"])
        log = tmp_path / f"{row['instance_id']}.txt"
        log.write_text(synthetic_log(wrong, tests))
        assert grade_log(row, "diff", "m", log)["resolved"] is False


# ---- through the CLI ----------------------------------------------------------------------------------
def run_cli(tmp_path, capsys, data, evaluation, monkeypatch):
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    config = tmp_path / "swe.toml"
    config.write_text(f'[run]\noutput_dir = "{tmp_path / "run"}"\n[suites.swebench-verified]\ndata = "{data}"\n'
                      f'evaluation = "{evaluation}"\nrepos_dir = "{tmp_path / "repos"}"\nclone = false\n')
    with StubServer(lambda body: {"content": "no"}) as stub, pytest.raises(SystemExit) as done:
        main(["run", str(config), "--endpoint", stub.url, "--model", "stub"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and not [b for b in stub.requests if "messages" in b]  # stopped before any request
    return done.value.code, " ".join(err.split())


def test_m1bench_run_docker_mode_on_the_real_rows_stops_at_docker(rows, tmp_path, capsys, monkeypatch, offline):
    """The 21 rows as published pass the spec check (they used to fail it: 'use a dataset revision that has
    them'); the run then needs a Docker daemon, which is not here, and says so in one error."""
    code, err = run_cli(tmp_path, capsys, ROWS, "docker", monkeypatch)
    assert code == 2 and err.count("error:") == 1
    assert "evaluation = 'docker': the official SWE-bench harness needs a running Docker daemon" in err


def test_m1bench_run_docker_mode_checks_every_spec_before_docker(rows, tmp_path, capsys, monkeypatch):
    """A row swebench has no spec for stops the run before Docker is asked for, naming the instance."""
    data = tmp_path / "rows.jsonl"
    bad = [{**r, "version": "0.0"} if r["instance_id"] == "sympy__sympy-23262" else r for r in rows]
    data.write_text("".join(json.dumps(r) + "\n" for r in bad))
    code, err = run_cli(tmp_path, capsys, data, "docker", monkeypatch)
    assert code == 2 and "Docker daemon" not in err
    assert "instance sympy__sympy-23262: swebench's MAP_REPO_VERSION_TO_SPECS has no sympy/sympy version 0.0" in err


def test_m1bench_run_local_mode_on_the_real_rows_takes_the_official_test_commands(rows, tmp_path, capsys,
                                                                                   monkeypatch, offline):
    """Local mode used to refuse these rows ('has no test_cmd'); with the commands from swebench's specs
    it goes on to the checkouts, which are not here (clone = false)."""
    code, err = run_cli(tmp_path, capsys, ROWS, "local", monkeypatch)
    assert code == 2 and "test_cmd" not in err
    assert f"astropy/astropy: no checkout at {tmp_path / 'repos' / 'astropy__astropy'} (clone is off" in err
