"""What makes a profiling number comparable: code version, packages, hardware, and a one-line form for plots."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path

import torch

from m1bench import __version__

REPO = Path(__file__).resolve().parents[2]


def git_commit() -> dict:
    """HEAD and dirty flag; M1BENCH_COMMIT stands in where the tree has no .git (the device machine's copy)."""
    if os.environ.get("M1BENCH_COMMIT"):
        return {"commit": os.environ["M1BENCH_COMMIT"], "dirty": None}

    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def environment(device: str | torch.device = "cpu") -> dict:
    env = {"m1bench": __version__, **git_commit(), "python": platform.python_version(), "torch": torch.__version__,
           "device": device_name(device), "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if torch.device(device).type == "cuda":
        env["cuda"] = torch.version.cuda
        try:
            import triton
            env["triton"] = triton.__version__
        except ImportError:
            env["triton"] = None
    return env


def provenance_line(env: dict, extra: str = "") -> str:
    commit = (env.get("commit") or "unknown")[:10] + ("-dirty" if env.get("dirty") else "")
    parts = [f"m1bench {env['m1bench']} @ {commit}", f"torch {env['torch']}", env.get("device", ""), env["time_utc"]]
    return " · ".join(p for p in [*parts, extra] if p)
