"""A server for the duration of a run: `m1bench run` with a `[server]` table starts the server it
describes, points its OpenAI client at it, and stops it when the run ends (or fails, or is
interrupted). The server's log goes into the run directory.

    [server]
    engine = "vllm"            # or "embedded"
    model = "/ckpt/MiniMax-M1-80k"
    tensor_parallel_size = 8
    dtype = "bfloat16"
    max_model_len = 131072
    quantization = "experts_int8"
    extra_args = ["--max-num-seqs", "64"]

Wiring in the run command (owned by the evaluation core):

    with served_for_run(raw.get("server"), cfg.output_dir) as endpoint:
        if endpoint:
            cfg.model = endpoint.model_config(cfg.model)
        ...run...
"""
from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from m1bench.harness.core.files import InputError
from m1bench.harness.serve.launcher import ManagedServer, ServerSpec


class ServerConfigError(InputError):
    pass


@dataclass
class Endpoint:
    base_url: str
    model: str
    log_path: Path
    command: list[str]

    def model_config(self, model_cfg: Any) -> Any:
        """The run's [model] section, answered by this server through the OpenAI client."""
        return dataclasses.replace(model_cfg, engine="openai", endpoints=[self.base_url], name=self.model)

    def describe(self) -> dict[str, Any]:
        """What the run's results should record about the server."""
        return {"base_url": self.base_url, "model": self.model, "command": self.command, "log": str(self.log_path)}


def spec_from_table(table: dict[str, Any], source: str = "server") -> ServerSpec:
    """A `[server]` config table -> ServerSpec; errors name the key."""
    if not isinstance(table, dict):
        raise ServerConfigError(f"config key {source}: expected a table, got {type(table).__name__}")
    known = {f.name: f for f in fields(ServerSpec)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ServerConfigError(f"config key {source}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    if "model" not in table:
        raise ServerConfigError(f"config key {source}.model: required (checkpoint directory or preset)")
    for key, value in table.items():
        want = known[key].type
        ok = {"list[str]": isinstance(value, list) and all(isinstance(v, str) for v in value),
              "bool": isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "int": isinstance(value, int) and not isinstance(value, bool), "str": isinstance(value, str)}
        kind = next((k for k in ok if k in str(want)), None)
        if value is not None and kind is not None and not ok[kind]:
            raise ServerConfigError(f"config key {source}.{key}: expected {kind}, got {type(value).__name__} {value!r}")
    try:
        return ServerSpec(**table)
    except ValueError as e:
        raise ServerConfigError(f"config key {source}: {e}") from None


@contextmanager
def served_for_run(table: dict[str, Any] | None, run_dir: str | Path) -> Iterator[Endpoint | None]:
    """Start the `[server]` a run asks for (None: no server, yields None) and stop it afterwards."""
    if not table:
        yield None
        return
    server = ManagedServer(spec_from_table(table), run_dir)
    with server:
        yield Endpoint(server.base_url, server.served_model_name, server.log_path, server.cmd)
