"""Run untrusted (model-generated) programs: one process each, contained.

Every run gets its own private temporary directory, CPU-time / address-space / process-count /
file-size limits (prlimit), a wall-clock timeout enforced from outside, and stdout/stderr written
to files the harness owns (so an endless print hits the file-size limit, not our memory).

OS isolation, strongest available first (`isolation` says which one ran):
- "unshare": new mount, network, PID, IPC and UTS namespaces (util-linux `unshare`). Inside: no
  network interface but a down loopback; a fresh /proc; the root filesystem remounted read-only;
  the private directory bound on /tmp (the program's cwd); /var/tmp and /dev/shm replaced by
  small tmpfs; and, when we are root, the program drops to an unprivileged uid of its own with no
  capabilities (`setpriv`), which also makes the process-count limit bite. The whole PID
  namespace dies with its first process.
- "userns": the same through an unprivileged user namespace, when we are not root.
- "rlimits": no namespaces available: resource limits, a new session, an intermediate shell so
  the program's parent is not the harness, and (as root) the same unprivileged uid. Network and
  the file system (beyond what that uid may not touch) are NOT isolated.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_UID_BASE, _UID_SPAN = 61000, 2000
_uids = itertools.count()
_uid_lock = threading.Lock()

_NS_FLAGS = ["--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child"]
# Runs as (namespaced) root before the program starts; $1 = private dir, $2 = uid or "-", rest = argv.
_SETUP = r"""
set -e
mount --make-rprivate /
mount -t proc proc /proc
mount --bind "$1" /tmp
for d in /var/tmp /dev/shm; do [ -d "$d" ] && mount -t tmpfs -o size=8m,mode=1777 tmpfs "$d"; done
mount -o remount,bind,ro /
cd /tmp
uid=$2; shift 2
if [ "$uid" = "-" ]; then exec "$@"; fi
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all -- "$@"
"""


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024  # address space
    max_procs: int = 32
    max_file_mb: int = 16  # any file the program writes, stdout and stderr included


@dataclass
class ExecResult:
    returncode: int | None  # negative: killed by that signal
    stdout: str
    stderr: str
    timed_out: bool
    wall_s: float
    files: dict[str, str] | None = None  # files asked for by `collect`, as the program left them

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _world_usable(path: str) -> bool:
    """Whether an unprivileged uid can execute `path` (every directory on the way searchable)."""
    p = Path(path).resolve()
    try:
        if not p.stat().st_mode & stat.S_IXOTH:
            return False
        return all(d.stat().st_mode & stat.S_IXOTH for d in p.parents)
    except OSError:
        return False


@lru_cache(maxsize=None)
def default_python() -> str:
    """An interpreter the sandbox uid can run: ours if reachable, else the system one."""
    candidates = [sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]
    if os.geteuid() != 0:
        return sys.executable
    for c in candidates:
        if c and _world_usable(c):
            return str(Path(c).resolve())
    return sys.executable


@lru_cache(maxsize=None)
def probe_isolation() -> str:
    """Strongest isolation that actually works here ("unshare", "userns" or "rlimits")."""
    if not (shutil.which("unshare") and shutil.which("prlimit")):
        return "rlimits"
    root = os.geteuid() == 0
    modes = ["unshare"] if root and shutil.which("setpriv") else []
    modes.append("userns")
    with tempfile.TemporaryDirectory(prefix="m1bench-probe-") as d:
        for mode in modes:
            cmd = _ns_prefix(mode) + ["/bin/sh", "-c", _SETUP, "sh", d, "-", "/bin/true"]
            try:
                if subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0:
                    return mode
            except (OSError, subprocess.TimeoutExpired):
                pass
    return "rlimits"


def _ns_prefix(mode: str) -> list[str]:
    user = ["--user", "--map-root-user"] if mode == "userns" else []
    return ["unshare", *user, *_NS_FLAGS, "--"]


class Sandbox:
    def __init__(self, limits: Limits = Limits(), isolation: str = "auto", python: str | None = None):
        self.limits = limits
        self.isolation = probe_isolation() if isolation == "auto" else isolation
        if self.isolation not in ("unshare", "userns", "rlimits"):
            raise ValueError(f"sandbox isolation must be auto, unshare, userns or rlimits, not {isolation!r}")
        self.python = python or default_python()

    def describe(self) -> dict:
        return {"isolation": self.isolation, "python": self.python,
                "limits": {k: getattr(self.limits, k) for k in self.limits.__dataclass_fields__}}

    def _prlimit(self) -> list[str]:
        L = self.limits
        mem = L.memory_mb << 20
        return ["prlimit", f"--cpu={L.cpu_s}:{L.cpu_s + 1}", f"--as={mem}:{mem}",
                f"--nproc={L.max_procs}:{L.max_procs}", f"--fsize={L.max_file_mb << 20}", "--core=0", "--"]

    def run_python(self, code: str, stdin: str = "", files: dict[str, str] | None = None,
                   wall_s: float | None = None, main: str = "program.py", collect: tuple[str, ...] = ()) -> ExecResult:
        """Run `code` as program.py (plus extra `files`, started from `main`) with `stdin`."""
        return self.run([self.python, "-I", main], {"program.py": code, **(files or {})}, stdin, wall_s, collect)

    def run(self, argv: list[str], files: dict[str, str], stdin: str = "", wall_s: float | None = None,
            collect: tuple[str, ...] = ()) -> ExecResult:
        wall_s = self.limits.wall_s if wall_s is None else wall_s
        box = Path(tempfile.mkdtemp(prefix="m1bench-sbx-"))
        io_dir = Path(tempfile.mkdtemp(prefix="m1bench-io-"))  # harness-side: stdin/stdout/stderr
        try:
            for name, text in files.items():
                (box / name).write_text(text)
            (io_dir / "stdin").write_text(stdin)
            cmd, uid = self._command(argv, box)
            if uid is not None:
                for p in [box, *box.iterdir()]:
                    os.chown(p, uid, uid)
            box.chmod(0o700)
            with open(io_dir / "stdin", "rb") as fin, open(io_dir / "stdout", "wb") as fout, \
                    open(io_dir / "stderr", "wb") as ferr:
                t0 = time.perf_counter()
                proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr, cwd=box,
                                        start_new_session=True, close_fds=True)
                # A timer kills on timeout while we block in waitpid (Popen.wait(timeout=) polls,
                # adding up to 50 ms to every run).
                expired = threading.Event()

                def expire() -> None:
                    expired.set()
                    _kill_group(proc, wait=False)

                timer = threading.Timer(wall_s, expire)
                timer.start()
                try:
                    proc.wait()
                finally:
                    timer.cancel()
                    _kill_group(proc)
                timed_out = expired.is_set()
                wall = time.perf_counter() - t0
            cap = self.limits.max_file_mb << 20
            out = (io_dir / "stdout").read_bytes()[:cap].decode(errors="replace")
            err = (io_dir / "stderr").read_bytes()[:cap].decode(errors="replace")
            got = {}
            for name in collect:  # only plain files, read at most up to the file-size limit
                p = box / name
                if p.is_file() and not p.is_symlink():
                    with open(p, "rb") as f:
                        got[name] = f.read(cap).decode(errors="replace")
            return ExecResult(returncode=None if timed_out else proc.returncode, stdout=out, stderr=err,
                              timed_out=timed_out, wall_s=wall, files=got)
        finally:
            shutil.rmtree(box, ignore_errors=True)
            shutil.rmtree(io_dir, ignore_errors=True)

    def _command(self, argv: list[str], box: Path) -> tuple[list[str], int | None]:
        uid = None
        if self.isolation != "userns" and os.geteuid() == 0 and shutil.which("setpriv"):
            with _uid_lock:
                uid = _UID_BASE + next(_uids) % _UID_SPAN
        if self.isolation == "rlimits":
            # The shell stays as the program's parent, so "kill my parent" cannot reach the harness.
            drop = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                                           "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--"]
            return ["/bin/sh", "-c", '"$@"; exit $?', "sh", *self._prlimit(), *drop, *argv], uid
        inner = [*self._prlimit(), *argv]
        return [*_ns_prefix(self.isolation), "/bin/sh", "-c", _SETUP, "sh", str(box),
                str(uid) if uid is not None else "-", *inner], uid


def _kill_group(proc: subprocess.Popen, wait: bool = True) -> None:
    """Kill the run's whole process group (the namespace dies with its first process)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if wait:
        proc.wait()
