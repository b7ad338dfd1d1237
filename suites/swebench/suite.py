"""SWE-bench Verified with an Agentless-style scaffold (suites/swebench/agentless.py): one sample is
one instance solved end to end (localisation, k repair samples, selection) into one patch, scored
by the official harness in Docker (or the local test mode). The resolved rate is avg@k. Rows as
princeton-nlp publishes them are evaluated as they are: the pinned swebench builds their test spec
from its tables (suites/swebench/spec.py).

`subset = "paper486"` runs the M1 paper's n=486 set (the 14 instances the paper names as excluded
are left out); the results' data section says which set ran.
"""
from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from m1bench.harness.core.client import Client
from m1bench.harness.core.sandbox import Limits, Sandbox, _world_usable, probe_isolation
from m1bench.harness.core.types import Completion, Request, Score
from m1bench.suites import register
from m1bench.suites.base import Option, Problem, Suite
from m1bench.suites.source import DataError, load_rows
from m1bench.suites.swebench.agentless import solve
from m1bench.suites.swebench.evaluate import docker_status, evaluate_docker, evaluate_local
from m1bench.suites.swebench.repo import DEFAULT_CLONE_URL, Snapshot, ensure_repo
from m1bench.suites.swebench.spec import NAMESPACE, in_tables, official, register_own_row

# The 14 SWE-bench Verified instances the M1 paper left out (n = 486).
PAPER_EXCLUDED = (
    "astropy__astropy-7606", "astropy__astropy-8707", "astropy__astropy-8872", "django__django-10097",
    "matplotlib__matplotlib-20488", "psf__requests-2317", "psf__requests-2931", "psf__requests-5414",
    "pylint-dev__pylint-6528", "pylint-dev__pylint-7277", "sphinx-doc__sphinx-10435", "sphinx-doc__sphinx-7985",
    "sphinx-doc__sphinx-8269", "sphinx-doc__sphinx-8475",
)
REQUIRED = ("instance_id", "repo", "base_commit", "problem_statement", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS")
HARNESS_MODEL = "m1bench"  # model_name_or_path in the harness's logs; the records carry the model's identity


@register
class SWEbenchVerified(Suite):
    name = "swebench-verified"
    version: ClassVar[str] = "2"  # 2: graded by swebench 4.1.0 (was 5.0.2), its apply commands and parsers
    default_samples: ClassVar[int] = 1
    episodic: ClassVar[bool] = True
    thread_safe_scoring: ClassVar[bool] = True
    default_data: ClassVar[str] = "SWE-bench/SWE-bench_Verified"
    options: ClassVar[dict[str, Option]] = {
        "subset": Option(str, "all", "'paper486': leave out the 14 instances the M1 paper excluded", choices=("all", "paper486")),
        "repos_dir": Option(str, "~/.cache/m1bench/swebench/repos", "checkouts: <dir>/<owner>__<name> (or <dir>/<name>)"),
        "clone": Option(bool, True, "clone (or fetch) missing repositories and commits into repos_dir"),
        "clone_url": Option(str, DEFAULT_CLONE_URL, "where to clone from ({repo} = owner/name)"),
        "evaluation": Option(str, "docker", "docker: the official swebench harness; local: the tests in m1bench's sandbox",
                             choices=("docker", "local")),
        "eval_timeout_s": Option(int, 1800, "test run limit per instance"),
        "max_files": Option(int, 5, "localisation: files kept from stage 1"),
        "repair_samples": Option(int, 4, "repair samples per instance before selection"),
        "context_lines": Option(int, 10, "repair: lines shown around each located element"),
        "fallback_lines": Option(int, 300, "repair: lines shown of a file with no usable location"),
        "local_isolation": Option(str, "auto", "local mode: sandbox isolation (auto, unshare, userns, rlimits)",
                                  choices=("auto", "unshare", "userns", "rlimits")),
        "local_memory_mb": Option(int, 4096, "local mode: address-space limit of the test run"),
    }

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._test_cmds: dict[str, str] = {}  # local mode: the command each instance's tests run with
        self._sandbox: Sandbox | None = None
        self._isolation_note: str | None = None

    @property
    def grader(self) -> str:  # type: ignore[override]
        try:
            return f"swebench=={metadata.version('swebench')}"
        except metadata.PackageNotFoundError:
            return "swebench (not installed)"

    def load(self, opts: dict[str, Any]) -> tuple[list[Problem], dict[str, Any]]:
        for key in ("max_files", "repair_samples", "eval_timeout_s"):
            if opts[key] < 1:
                raise DataError(f"suites.{self.name}.{key}: must be >= 1, got {opts[key]}")
        rows, info = load_rows(opts.get("data") or self.default_data, revision=opts.get("revision"),
                               split=opts.get("split") or "test")
        for i, row in enumerate(rows):
            missing = [k for k in REQUIRED if not row.get(k) and k not in ("FAIL_TO_PASS", "PASS_TO_PASS")]
            missing += [k for k in ("FAIL_TO_PASS", "PASS_TO_PASS") if row.get(k) is None]
            if missing:
                raise DataError(f"{info['source']} row {i}: missing {', '.join(missing)}")
        excluded = []
        if opts["subset"] == "paper486":
            excluded = [{"id": r["instance_id"], "reason": "left out of the M1 paper's n=486 set"}
                        for r in rows if r["instance_id"] in PAPER_EXCLUDED]
            rows = [r for r in rows if r["instance_id"] not in PAPER_EXCLUDED]
        if opts.get("limit") is not None:
            rows = rows[: opts["limit"]]
        self._check_evaluation(rows, opts, info["source"])
        for r in rows:  # every checkout is there (or cloned) before the first request
            ensure_repo(opts["repos_dir"], r["repo"], r["base_commit"], opts["clone"], opts["clone_url"])
        self._rows = {r["instance_id"]: r for r in rows}
        problems = [Problem(id=r["instance_id"], messages=[{"role": "user", "content": r["problem_statement"]}],
                            target=None, meta={"repo": r["repo"], "base_commit": r["base_commit"]}) for r in rows]
        return problems, {**info, "subset": opts["subset"], "instances": len(rows), "excluded": excluded}

    def _check_evaluation(self, rows: list[dict[str, Any]], opts: dict[str, Any], source: str) -> None:
        """Every row's spec is built (by swebench, from its tables) before Docker is asked for or a request
        is sent; local mode takes each row's test command from it unless the row carries its own."""
        where = f"suites.{self.name}.evaluation"
        try:
            import swebench  # noqa: F401
        except ImportError:
            raise DataError(f"{where}: grading needs the swebench package (pip install 'm1bench[swebench]')") from None
        if opts["evaluation"] == "docker":
            for r in rows:
                official(r, source)
            why = docker_status()
            if why is not None:
                raise DataError(f"{where} = 'docker': the official SWE-bench harness needs a running Docker daemon, "
                                f"and none answered ({why}). Start Docker, or set evaluation = 'local' to run the "
                                f"tests in m1bench's sandbox instead (not the official environment).")
            return
        for r in rows:
            if r.get("test_cmd"):
                self._test_cmds[r["instance_id"]] = r["test_cmd"]
                if not in_tables(r):
                    register_own_row(r, source)
            elif in_tables(r):
                self._test_cmds[r["instance_id"]] = official(r, source).test_cmd
            else:
                raise DataError(f"{source}: instance {r['instance_id']}: {r['repo']} version {r.get('version')} is not "
                                f"in swebench's specs and the row has no test_cmd, so local mode has no test to run")

    def sandbox(self, opts: dict[str, Any]) -> Sandbox:
        if self._sandbox is None:
            isolation = opts["local_isolation"]
            if isolation == "auto":
                isolation = probe_isolation()
                if isolation == "unshare" and not _world_usable(sys.executable):
                    # the unprivileged uid of "unshare" could not run this interpreter (or its packages)
                    isolation = "userns"
                    self._isolation_note = f"userns: {sys.executable} is not usable by an unprivileged uid"
            t = opts["eval_timeout_s"]
            interpreter = (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)))
            self._sandbox = Sandbox(Limits(wall_s=t, cpu_s=t, memory_mb=opts["local_memory_mb"], max_procs=64,
                                           max_file_mb=64), isolation=isolation, python=sys.executable,
                                    keep_visible=interpreter)
        return self._sandbox

    def _snapshot(self, row: dict[str, Any], opts: dict[str, Any]) -> Snapshot:
        path = ensure_repo(opts["repos_dir"], row["repo"], row["base_commit"], opts["clone"], opts["clone_url"])
        return Snapshot(path, row["base_commit"])

    async def episode(self, problem: Problem, client: Client, request: Request, opts: dict[str, Any]) -> Completion:
        row = self._rows[problem.id]
        return await solve(row["problem_statement"], self._snapshot(row, opts), client, request, opts)

    def score(self, problem: Problem, completion: Completion, opts: dict[str, Any]) -> Score:
        row = self._rows[problem.id]
        work = self.work_dir or Path.cwd() / "swebench-eval"
        if opts["evaluation"] == "docker":
            res = evaluate_docker(row, completion.text, HARNESS_MODEL, work, opts["eval_timeout_s"])
        else:
            res = evaluate_local(row, self._test_cmds[problem.id], self._snapshot(row, opts), completion.text,
                                 HARNESS_MODEL, work, self.sandbox(opts), opts["eval_timeout_s"])
        return Score(correct=res.resolved, details={"resolved": res.resolved, "reason": res.reason,
                                                    "evaluation": opts["evaluation"], "log": res.log,
                                                    "tests_status": res.report.get("tests_status")})

    def environment(self, opts: dict[str, Any]) -> dict[str, Any]:
        env = {"evaluation": opts["evaluation"], "grader": self.grader, "subset": opts["subset"],
               "repair_samples": opts["repair_samples"], "max_files": opts["max_files"]}
        if opts["evaluation"] == "docker":
            env["image_namespace"] = NAMESPACE  # the published instance images the harness pulls
        if opts["evaluation"] == "local" and self._sandbox is not None:
            env["sandbox"] = self._sandbox.describe()
            if self._isolation_note:
                env["sandbox"]["note"] = self._isolation_note
        return env
