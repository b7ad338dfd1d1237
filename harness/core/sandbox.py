"""Run untrusted (model-generated) programs: one process each, contained.

Every run gets its own private temporary directory, CPU-time / address-space / process-count /
file-size limits (prlimit), a wall-clock timeout enforced from outside, stdout/stderr written to
files the harness owns (so an endless print hits the file-size limit, not our memory), and an
environment of its own built from an allow-list (PATH, LANG/LC_ALL, HOME and TMPDIR in its own
directory): never the harness's, which holds endpoint keys and hub tokens. When the harness runs as
root, every mode runs the program as an unprivileged uid of its own with no capabilities, so the
process-count limit binds and files only root may read stay unread.

OS isolation, strongest available first (`isolation` says which one ran):
- "unshare": new mount, network, PID, IPC and UTS namespaces (util-linux `unshare`). Inside: no
  network interface but a down loopback; a fresh /proc; the root filesystem remounted read-only;
  the private directory bound on /tmp (the program's cwd); /var/tmp and /dev/shm replaced by
  small tmpfs; the harness user's credential files (~/.netrc, ~/.cache/huggingface, ~/.aws, ...)
  covered by empty ones. The whole PID namespace dies with its first process, daemons included.
- "userns": the same through a user namespace that maps only the harness's uid: for a harness
  that is not root, or for programs that need the harness's own interpreter (SWE-bench's local
  tests). Its program is root inside the namespace, where the process-count rlimit does not bind,
  so as root a pids cgroup holds it to `max_procs` (refused where no pids cgroup is writable).
- "rlimits": no namespaces available: resource limits, a new session, and a subreaper between
  the harness and the program that kills every process the run left behind (a double-forked
  daemon included) when the program ends. Network and the file system (beyond what the uid may
  not touch) are NOT isolated: `CONTAINS` says so, and the run's results carry it.
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
PATH = "/usr/local/bin:/usr/bin:/bin"
# Credential files of the harness's user, covered inside the namespace (relative to its home).
CREDENTIALS = (".netrc", ".git-credentials", ".pypirc", ".npmrc", ".cache/huggingface", ".huggingface",
               ".aws", ".azure", ".config/gcloud", ".docker", ".kube", ".ssh", ".gnupg")
# What each mode keeps from a hostile program (measured by tests/harness/core/test_sandbox.py).
CONTAINS = {
    "unshare": {"contained": ["cpu", "memory", "processes", "file size", "network", "writes outside its dir",
                              "daemons", "harness environment", "credential files"], "not_contained": []},
    "rlimits": {"contained": ["cpu", "memory", "processes", "file size", "daemons", "harness environment"],
                "not_contained": ["network", "writes outside its dir (where its uid may write)",
                                  "credential files its uid may read"]},
}
CONTAINS["userns"] = CONTAINS["unshare"]  # the same namespaces; as root a pids cgroup and no capabilities
# Between the harness and the program in rlimits mode: a subreaper, so orphans of the run
# (setsid'd, double-forked) reparent to it, and it kills them all when the program exits.
_REAPER = r"""
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status = os.waitpid(pid, 0)
while True:
    try:
        kids = open(f"/proc/self/task/{os.getpid()}/children").read().split()
    except OSError:
        kids = []
    for k in kids:
        try:
            os.kill(int(k), signal.SIGKILL)
        except OSError:
            pass
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        if not kids:
            break
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
"""
# Runs as (namespaced) root before the program starts; $1 = private dir, $2 = uid or "-", $3 = the
# harness's home, $4 = the credential paths under it (space-separated), $5 = paths under /tmp the
# program must still see, read-only (an interpreter installed there), rest = argv.
_SETUP = r"""
set -e
mount --make-rprivate /
mount -t proc proc /proc
for c in $4; do
  p="$3/$c"
  if [ -d "$p" ] && [ ! -L "$p" ]; then mount -t tmpfs -o size=1m,mode=0755 tmpfs "$p"
  elif [ -f "$p" ] && [ ! -L "$p" ]; then mount --bind /dev/null "$p"; fi
done
for p in $5; do
  mkdir -p "$1/${p#/tmp/}" && mount --bind "$p" "$1/${p#/tmp/}" && mount -o remount,bind,ro "$1/${p#/tmp/}"
done
mount --rbind "$1" /tmp
for d in /var/tmp /dev/shm; do [ -d "$d" ] && mount -t tmpfs -o size=8m,mode=1777 tmpfs "$d"; done
mount -o remount,bind,ro /
cd /tmp
uid=$2; shift 5
# "-": stay this uid (userns: root inside) but with no capabilities, so the mounts above stay put
if [ "$uid" = "-" ]; then exec setpriv --no-new-privs --bounding-set=-all --inh-caps=-all -- "$@"; fi
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
            cmd = _ns_prefix(mode) + ["/bin/sh", "-c", _SETUP, "sh", d, "-", _home(), " ".join(CREDENTIALS), "",
                                      "/bin/true"]
            try:
                if subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0:
                    return mode
            except (OSError, subprocess.TimeoutExpired):
                pass
    return "rlimits"


def _home() -> str:
    return os.path.expanduser("~")


def program_env(home: str) -> dict[str, str]:
    """The whole environment a sandboxed program gets: what a runtime needs, nothing of ours."""
    return {"PATH": PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": home, "TMPDIR": home,
            "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1"}


def _ns_prefix(mode: str) -> list[str]:
    user = ["--user", "--map-root-user"] if mode == "userns" else []
    return ["unshare", *user, *_NS_FLAGS, "--"]


class Sandbox:
    def __init__(self, limits: Limits = Limits(), isolation: str = "auto", python: str | None = None,
                 keep_visible: tuple[str, ...] = ()):
        self.limits = limits
        self.isolation = probe_isolation() if isolation == "auto" else isolation
        if self.isolation not in ("unshare", "userns", "rlimits"):
            raise ValueError(f"sandbox isolation must be auto, unshare, userns or rlimits, not {isolation!r}")
        if self.isolation == "userns" and os.geteuid() == 0 and pids_cgroup_root() is None:
            raise ValueError("sandbox isolation 'userns' as root needs a pids cgroup to bind the process limit "
                             "(none is writable here); use 'unshare' (what 'auto' picks)")
        self.python = python or default_python()
        # /tmp is the program's own directory inside the namespaces: what it must run from there
        # (the interpreter's prefix, when the harness's venv lives under /tmp) is bound back read-only
        self.keep_visible = tuple(sorted({os.path.realpath(k) for k in keep_visible} - {"/tmp"}))

    def describe(self) -> dict:
        return {"isolation": self.isolation, "python": self.python, **CONTAINS[self.isolation],
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
        uid, cgroup = None, None
        try:
            for name, text in files.items():
                (box / name).write_text(text)
            (io_dir / "stdin").write_text(stdin)
            cmd, uid = self._command(argv, box)
            # As (namespaced) root the process-count rlimit does not bind: a pids cgroup does.
            cgroup = _PidsCgroup(self.limits.max_procs) if self.isolation == "userns" and os.geteuid() == 0 else None
            if cgroup is not None:
                cmd = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup.path), *cmd]
            if uid is not None:
                for p in [box, *box.iterdir()]:
                    os.chown(p, uid, uid)
            box.chmod(0o700)
            with open(io_dir / "stdin", "rb") as fin, open(io_dir / "stdout", "wb") as fout, \
                    open(io_dir / "stderr", "wb") as ferr:
                t0 = time.perf_counter()
                home = str(box) if self.isolation == "rlimits" else "/tmp"  # the box is bound on /tmp inside
                proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr, cwd=box, env=program_env(home),
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
            if uid is not None and self.isolation == "rlimits":
                _kill_uid(uid)  # what escaped the reaper (a daemon of a run killed at its timeout)
            if cgroup is not None:
                cgroup.remove()
            shutil.rmtree(box, ignore_errors=True)
            shutil.rmtree(io_dir, ignore_errors=True)

    def _command(self, argv: list[str], box: Path) -> tuple[list[str], int | None]:
        uid = None
        # userns maps only our own uid: its program stays (namespaced) root, held by a pids cgroup
        if self.isolation != "userns" and os.geteuid() == 0 and shutil.which("setpriv"):
            with _uid_lock:
                uid = _UID_BASE + next(_uids) % _UID_SPAN
        if self.isolation == "rlimits":
            # The shell stays as the program's parent, so "kill my parent" cannot reach the harness.
            drop = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                                           "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--"]
            # The reaper runs as the harness's uid (the program drops to its own after it).
            return [sys.executable, "-I", "-c", _REAPER, *self._prlimit(), *drop, *argv], uid
        inner = [*self._prlimit(), *argv]
        return [*_ns_prefix(self.isolation), "/bin/sh", "-c", _SETUP, "sh", str(box),
                str(uid) if uid is not None else "-", _home(), " ".join(CREDENTIALS),
                " ".join(k for k in self.keep_visible if k.startswith("/tmp/") and " " not in k), *inner], uid


@lru_cache(maxsize=None)
def pids_cgroup_root() -> Path | None:
    """A writable pids cgroup directory to make per-run groups in (cgroup v1 or v2), or None."""
    for d in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        probe = d / f"m1bench-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError:
            continue
        try:
            if (probe / "pids.max").exists():
                return d
        finally:
            probe.rmdir()
    return None


class _PidsCgroup:
    """One run's pids cgroup: at most `max_procs` tasks; every task in it killed when removed."""

    def __init__(self, max_procs: int):
        self.path = pids_cgroup_root() / f"m1bench-{os.getpid()}-{next(_uids)}"
        self.path.mkdir()
        (self.path / "pids.max").write_text(str(max_procs))

    def remove(self) -> None:
        for _ in range(50):
            try:
                pids = (self.path / "cgroup.procs").read_text().split()
            except OSError:
                return
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
            try:
                self.path.rmdir()
                return
            except OSError:  # tasks still exiting
                time.sleep(0.02)


def _kill_uid(uid: int) -> None:
    """Kill every process of a run's own uid (no other process has it)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if int((d / "status").read_text().split("Uid:")[1].split()[0]) == uid:
                os.kill(int(d.name), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            continue


def _kill_group(proc: subprocess.Popen, wait: bool = True) -> None:
    """Kill the run's whole process group (the namespace dies with its first process)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if wait:
        proc.wait()
