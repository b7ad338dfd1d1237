"""Evaluating a SWE-bench patch; both modes grade with swebench's own functions.

- docker: the official harness, `python -m swebench.harness.run_evaluation` (pinned as the
  `swebench` extra), one instance per call, run in `<work>/docker` on the row as the dataset has it
  (the harness builds the spec from its tables) and the published instance images (namespace
  `swebench`, pulled). Its per-instance report.json is read back; when it wrote none (a patch that
  does not apply, a timeout) its run_instance.log says why. Runs are keyed by the patch's content,
  so the same patch is never evaluated twice.
- local: for repositories whose tests run on this machine (not the official environment): the base
  commit is unpacked in a scratch directory inside m1bench's sandbox, the patch applied with the
  harness's own sequence of apply commands, the instance's test patch applied over its test files,
  and the test command (the official spec's, or the row's own `test_cmd`) run between the harness's
  log markers. swebench.harness.grading.get_eval_report scores that log.
"""
from __future__ import annotations

import base64
import hashlib
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m1bench.harness.core.sandbox import Sandbox
from m1bench.harness.core.secrets import Redactor
from m1bench.suites.swebench.repo import Snapshot
from m1bench.suites.swebench.spec import NAMESPACE, grading_spec

_DIFF_FILE = "diff --git a/"


@dataclass
class EvalResult:
    resolved: bool
    reason: str
    report: dict[str, Any]  # swebench's report for the instance ({} when it never ran)
    log: str | None  # where the test log is


def prediction(instance_id: str, model: str, patch: str) -> dict[str, str]:
    """One line of the official predictions file."""
    return {"instance_id": instance_id, "model_name_or_path": model, "model_patch": patch}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def outcome(entry: dict[str, Any]) -> tuple[bool, str]:
    """(resolved, why) from swebench's per-instance report."""
    if entry.get("resolved"):
        return True, "resolved"
    if not entry.get("patch_exists", True) or entry.get("patch_is_None"):
        return False, "empty patch"
    if not entry.get("patch_successfully_applied"):
        return False, "no test results (patch did not apply, or the tests did not run)"
    status = entry.get("tests_status", {})
    parts = []
    for key, label in (("FAIL_TO_PASS", "FAIL_TO_PASS still failing"), ("PASS_TO_PASS", "PASS_TO_PASS broken")):
        failed = status.get(key, {}).get("failure", [])
        if failed:
            parts.append(f"{label}: {', '.join(failed[:10])}{' …' if len(failed) > 10 else ''}")
    return False, "; ".join(parts) or "not resolved"


def grade_log(row: dict[str, Any], patch: str, model: str, log: Path) -> dict[str, Any]:
    """swebench's report for the instance from a test log in the harness's format."""
    from swebench.harness.grading import get_eval_report

    report = get_eval_report(test_spec=grading_spec(row), prediction=prediction(row["instance_id"], model, patch),
                             test_log_path=str(log), include_tests_status=True)
    return report[row["instance_id"]]


# ---- docker: the official harness -----------------------------------------------------------------
def docker_status() -> str | None:
    """None when a Docker daemon answers; else why not."""
    try:
        import docker
    except ImportError:
        return "the docker package is missing (install the swebench extra: pip install 'm1bench[swebench]')"
    try:
        docker.from_env(timeout=10).ping()
    except Exception as e:
        return f"{type(e).__name__}: {str(e)[:300]}"
    return None


def run_harness(cmd: list[str], cwd: Path, timeout_s: float) -> tuple[str, int | None]:
    """Run the official harness; (its output, exit status or None when it ran out of time)."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
        return proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        return f"{e.stdout or ''}{e.stderr or ''}\nm1bench: the harness ran past {timeout_s}s", None


def evaluate_docker(row: dict[str, Any], patch: str, model: str, work: Path, timeout_s: int) -> EvalResult:
    iid = row["instance_id"]
    if not patch.strip():
        return EvalResult(False, "empty patch", {}, None)
    d = Path(work) / "docker"
    run_id = f"m1bench-{_digest(iid, patch)}"
    for sub in ("instances", "predictions", "harness"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    instances = d / "instances" / f"{run_id}.json"
    instances.write_text(json.dumps([row], default=str))
    preds = d / "predictions" / f"{run_id}.jsonl"
    preds.write_text(json.dumps(prediction(iid, model, patch)) + "\n")
    cmd = [sys.executable, "-m", "swebench.harness.run_evaluation", "--dataset_name", str(instances),
           "--split", "test", "--instance_ids", iid, "--predictions_path", str(preds), "--max_workers", "1",
           "--run_id", run_id, "--timeout", str(timeout_s), "--namespace", NAMESPACE, "--report_dir", str(d / "reports")]
    out, rc = run_harness(cmd, d, timeout_s + 3600)  # image builds come on top of the test time
    (d / "harness" / f"{run_id}.log").write_text(f"$ {shlex.join(cmd)}\n{out}")
    inst = d / "logs" / "run_evaluation" / run_id / model.replace("/", "__") / iid
    if (inst / "report.json").exists():
        entry = json.loads((inst / "report.json").read_text())[iid]
        resolved, reason = outcome(entry)
        return EvalResult(resolved, reason, entry, str(inst / "test_output.txt"))
    from swebench.harness.constants import APPLY_PATCH_FAIL

    run_log = (inst / "run_instance.log").read_text(errors="replace") if (inst / "run_instance.log").exists() else ""
    if APPLY_PATCH_FAIL in run_log:
        reason = "patch does not apply"
    elif "timed out" in run_log.lower():
        reason = f"tests timed out (> {timeout_s}s)"
    else:
        reason = f"evaluation error: the harness wrote no report (exit {rc}): {out.strip()[-300:]}"
    return EvalResult(False, reason, {}, str(inst / "run_instance.log"))


# ---- local: apply + run the tests in the sandbox, grade the log with swebench ---------------------------
def _files_in(patch: str) -> list[str]:
    return [line.split(" b/")[-1] for line in patch.splitlines() if line.startswith(_DIFF_FILE)]


def local_script(test_cmd: str, reset_files: list[str], new_files: list[str], python_bin: str) -> str:
    from swebench.harness.constants import APPLY_PATCH_FAIL, APPLY_PATCH_PASS, END_TEST_OUTPUT, START_TEST_OUTPUT
    from swebench.harness.run_evaluation import GIT_APPLY_CMDS

    git = "git -c user.name=m1bench -c user.email=m1bench@localhost"
    attempts = " ".join(shlex.quote(c) for c in GIT_APPLY_CMDS)
    reset = (f"git checkout -q HEAD -- {shlex.join(reset_files)}\n" if reset_files else "") + \
            (f"rm -f {shlex.join(new_files)}\n" if new_files else "")
    return f"""export PATH={shlex.quote(python_bin)}:"$PATH" HOME=/tmp/home PYTHONDONTWRITEBYTECODE=1
mkdir -p /tmp/home repo && cd repo
base64 -d ../repo.tar.b64 | tar -x
{git} init -q && {git} add -A && {git} commit -qm base
applied=0
for cmd in {attempts}; do
  if $cmd ../model.patch; then applied=1; break; fi
  git checkout -q -- . ; git clean -qfd
done
if [ $applied = 0 ] && git apply --check --reverse ../model.patch 2>/dev/null; then applied=1; fi
if [ $applied = 0 ]; then echo "{APPLY_PATCH_FAIL}"; exit 0; fi
echo "{APPLY_PATCH_PASS}"
{reset}git apply -v ../test.patch || {{ echo "m1bench: the test patch did not apply"; exit 0; }}
echo "{START_TEST_OUTPUT}"
{test_cmd}
echo "{END_TEST_OUTPUT}"
"""


def evaluate_local(row: dict[str, Any], test_cmd: str, snapshot: Snapshot, patch: str, model: str, work: Path,
                   sandbox: Sandbox, timeout_s: int) -> EvalResult:
    from swebench.harness.constants import APPLY_PATCH_FAIL, TESTS_TIMEOUT

    iid = row["instance_id"]
    if not patch.strip():
        return EvalResult(False, "empty patch", {}, None)
    d = Path(work) / "local" / _digest(iid, patch) / iid
    d.mkdir(parents=True, exist_ok=True)
    test_files = _files_in(row["test_patch"])
    exists = [f for f in test_files if snapshot.read(f) is not None]
    script = local_script(test_cmd, exists, [f for f in test_files if f not in exists],
                          str(Path(sandbox.python).parent))
    files = {"repo.tar.b64": base64.b64encode(snapshot.archive()).decode(), "model.patch": patch,
             "test.patch": row["test_patch"], "eval.sh": script}
    res = sandbox.run(["/bin/bash", "eval.sh"], files, wall_s=timeout_s)
    redactor = Redactor.from_environ()  # the logs sit in the run directory: no secret of ours in them
    log = d / "test_output.txt"
    log.write_text(redactor.text(res.stdout + (f"\n{TESTS_TIMEOUT}\n" if res.timed_out else ""))[0])
    (d / "patch.diff").write_text(patch)
    (d / "eval.sh").write_text(script)
    (d / "run_instance.log").write_text(f"exit: {res.returncode} timed_out: {res.timed_out} wall: {res.wall_s:.1f}s\n"
                                        f"{redactor.text(res.stderr)[0]}")
    entry = grade_log(row, patch, model, log)
    resolved, reason = outcome(entry)
    if not entry.get("patch_successfully_applied"):
        text = log.read_text()
        if APPLY_PATCH_FAIL in text:
            reason = "patch does not apply"
        elif res.timed_out:
            reason = f"tests timed out (> {timeout_s}s)"
        elif "the test patch did not apply" in text:
            reason = "the instance's test patch does not apply over the patch"
    return EvalResult(resolved, reason, entry, str(log))
