"""Hostile programs against the sandbox: each is contained, graded as failing, and the harness
(this test process, its files, its other processes) is unharmed."""
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from m1bench.harness.core.sandbox import Limits, Sandbox, probe_isolation
from m1bench.suites.livecodebench.grading import run_tests

ISOLATION = probe_isolation()
needs_ns = pytest.mark.skipif(ISOLATION == "rlimits", reason="no namespace isolation on this machine")
LIMITS = Limits(wall_s=3, cpu_s=2, memory_mb=256, max_procs=16, max_file_mb=1)


@pytest.fixture(scope="module")
def sb():
    return Sandbox(LIMITS)


def grade(sb, code, expected="done\n", timeout=3):
    """Grade `code` as a stdin solution whose only test expects `expected`."""
    return run_tests(code, [{"input": "", "output": expected}], None, sb, timeout)


def sandbox_uid_processes():
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                uid = int((d / "status").read_text().split("Uid:")[1].split()[0])
            except (OSError, IndexError):
                continue
            if 61000 <= uid < 63000:
                out.append(int(d.name))
    return out


def test_reports_isolation(sb):
    assert sb.describe()["isolation"] == ISOLATION
    if os.geteuid() == 0 and ISOLATION != "rlimits":
        assert ISOLATION == "unshare"


def test_well_behaved_program(sb):
    r = sb.run_python("print(input()[::-1])", stdin="abc\n")
    assert r.ok and r.stdout == "cba\n"


def test_infinite_loop_times_out(sb):
    t = time.perf_counter()
    res = grade(sb, "while True:\n    pass\n", timeout=1)
    assert not res["passed"] and res["failure"]["error"] == "time limit exceeded"
    assert time.perf_counter() - t < 5


def test_fork_bomb_contained(sb):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    t = time.perf_counter()
    res = grade(sb, code, timeout=2)
    assert not res["passed"] and time.perf_counter() - t < 10
    if ISOLATION == "unshare":  # the whole PID namespace is torn down (the kernel reaps it shortly after)
        deadline = time.monotonic() + 5
        while sandbox_uid_processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sandbox_uid_processes() == []
    assert subprocess.run(["true"]).returncode == 0  # we can still fork


def test_memory_bomb_contained(sb):
    res = grade(sb, "x = []\nwhile True:\n    x.append(bytearray(64 << 20))\n")
    assert not res["passed"] and ("MemoryError" in res["failure"].get("stderr", "") or res["failure"]["error"])


def test_output_flood_and_big_file_hit_file_size_limit(sb):
    assert not grade(sb, "while True:\n    print('y' * 4096)\n")["passed"]
    r = sb.run_python("f = open('big', 'w')\nwhile True:\n    f.write('x' * 65536)\n")
    assert not r.ok and "File too large" in r.stderr
    assert len(r.stdout) <= LIMITS.max_file_mb << 20


@needs_ns
def test_cannot_write_outside_its_dir(sb, tmp_path):
    targets = [tmp_path / "escaped", Path.cwd() / "escaped_by_sandbox", Path("/root/escaped_by_sandbox")]
    code = "import sys\nok = 0\nfor p in sys.argv[1:] or %r:\n" % [str(t) for t in targets] + \
           "    try:\n        open(p, 'w').write('x')\n        ok += 1\n    except OSError:\n        pass\n" \
           "open('inside.txt', 'w').write('fine')\nprint('done' if ok else 'blocked')\n"
    res = grade(sb, code)
    assert not res["passed"]  # printed "blocked": every write outside failed
    assert not any(t.exists() for t in targets)
    r = sb.run_python("open('inside.txt', 'w').write('fine'); print(open('inside.txt').read())")
    assert r.ok and r.stdout.strip() == "fine"  # its own private dir is writable


@needs_ns
def test_private_dirs_are_private(sb):
    marker = Path("/tmp") / f"m1bench-host-marker-{os.getpid()}"
    marker.write_text("secret")
    try:
        r = sb.run_python(f"import os\nprint(os.path.exists({str(marker)!r}))")
        assert r.ok and r.stdout.strip() == "False"  # the host's /tmp is not the sandbox's /tmp
    finally:
        marker.unlink()


@needs_ns
def test_no_network(sb):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('done')\n"
        res = grade(sb, code)
        assert not res["passed"] and "runtime error" in res["failure"]["error"]
        srv.settimeout(0.2)
        with pytest.raises(socket.timeout):
            srv.accept()  # nothing reached the host's loopback
    finally:
        srv.close()


def test_killing_its_parent_and_everyone(sb):
    victim = subprocess.Popen(["sleep", "60"])  # another process of the harness
    code = (
        "import os, signal\n"
        f"for pid in (os.getppid(), {os.getpid()}, {victim.pid}, -1, 0):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
        "print('survived')\n"
    )
    try:
        res = grade(sb, code)
        assert not res["passed"]
        assert victim.poll() is None  # the harness's other process is alive (and so are we)
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("code,timeout", [
    ("while True:\n    pass\n", 1),
    ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", 2),
    ("x = []\nwhile True:\n    x.append(bytearray(64 << 20))\n", 3),
])
def test_rlimits_fallback_still_contains(code, timeout):
    """Without namespaces: limits and a separate session still hold."""
    sb = Sandbox(LIMITS, isolation="rlimits")
    t = time.perf_counter()
    assert not grade(sb, code + "print('done')\n", timeout=timeout)["passed"]
    assert time.perf_counter() - t < timeout + 8
    assert subprocess.run(["true"]).returncode == 0  # the harness can still fork


def test_rlimits_fallback_parent_is_not_the_harness():
    sb = Sandbox(LIMITS, isolation="rlimits")
    r = sb.run_python(f"import os\nprint(os.getppid() != {os.getpid()})\n")
    assert r.ok and r.stdout.strip() == "True"  # "kill my parent" would hit the intermediate shell


DAEMON = ("import os, time\n"
          "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(30)\n        os._exit(0)\n"
          "    os._exit(0)\n"
          "time.sleep(0.2)\nprint('left a daemon')\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox uid (which finds its processes) is dropped to as root")
@pytest.mark.parametrize("isolation", [ISOLATION, "rlimits"] if ISOLATION != "rlimits" else ["rlimits"])
def test_a_daemon_does_not_outlive_its_run(isolation):
    r = Sandbox(LIMITS, isolation=isolation).run_python(DAEMON)
    assert r.ok and r.stdout == "left a daemon\n"
    deadline = time.monotonic() + 2
    while sandbox_uid_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_uid_processes() == []


@pytest.mark.parametrize("isolation", [ISOLATION, "rlimits"] if ISOLATION != "rlimits" else ["rlimits"])
def test_the_program_gets_an_environment_of_its_own(isolation, monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "canary-0123456789")
    r = Sandbox(LIMITS, isolation=isolation).run_python("import os\nprint(sorted(os.environ.items()))\n")
    assert r.ok and "canary" not in r.stdout and "SOME_SERVICE_TOKEN" not in r.stdout
    env = dict(eval(r.stdout))
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin" and env["HOME"] == env["TMPDIR"]


FORK_BOMB = ("import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            import time\n"
             "            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    print(n)\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="about running as root")
def test_userns_as_root_binds_the_process_limit_through_a_pids_cgroup():
    from m1bench.harness.core.sandbox import pids_cgroup_root
    if pids_cgroup_root() is None:
        with pytest.raises(ValueError, match="needs a pids cgroup"):
            Sandbox(LIMITS, isolation="userns")
        return
    r = Sandbox(LIMITS, isolation="userns").run_python(FORK_BOMB)
    assert r.ok and 0 < int(r.stdout) < LIMITS.max_procs  # forks stopped at the limit, as root inside
    assert not [d for d in pids_cgroup_root().iterdir() if d.name.startswith(f"m1bench-{os.getpid()}-")]
    # root inside, but with no capabilities: the read-only root and the covering mounts stay put
    outside = Path(f"/m1bench-escape-{os.getpid()}")  # not under /tmp, which the namespace replaces
    r = Sandbox(LIMITS, isolation="userns").run_python(
        "import subprocess\n"
        "print([subprocess.run(c, capture_output=True).returncode for c in (['mount', '-o', 'remount,rw', '/'], "
        "['umount', '/tmp'])])\n"
        f"open({str(outside)!r}, 'w').write('x')\n")
    assert r.returncode != 0 and "[32, 32]" in r.stdout and "Read-only file system" in r.stderr
    assert not outside.exists()


def test_each_mode_says_what_it_does_not_contain():
    assert Sandbox(LIMITS, isolation="rlimits").describe()["not_contained"][0] == "network"
    if ISOLATION != "rlimits":
        assert Sandbox(LIMITS).describe()["not_contained"] == []


@needs_ns
def test_credential_files_are_covered(monkeypatch):
    home = Path(__file__).resolve().parents[3] / "runs" / f"test-home-{os.getpid()}"
    if str(home).startswith("/tmp/"):
        pytest.skip("the repository is under /tmp, which the namespace replaces: nothing there is visible")
    (home / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
    try:
        (home / ".netrc").write_text("password canary-0123456789\n")
        (home / ".cache" / "huggingface" / "token").write_text("canary-0123456789")
        for p in (home.parent, home, *home.rglob("*")):
            p.chmod(0o755 if p.is_dir() else 0o644)
        monkeypatch.setenv("HOME", str(home))
        r = Sandbox(LIMITS).run_python(
            f"import os\nfor p in ('.netrc', '.cache/huggingface/token'):\n"
            f"    p = os.path.join({str(home)!r}, p)\n    print(open(p).read() if os.path.exists(p) else 'gone')\n")
        assert r.ok and "canary" not in r.stdout, r.stdout
    finally:
        shutil.rmtree(home, ignore_errors=True)
