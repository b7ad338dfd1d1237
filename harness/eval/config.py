"""Run configuration (TOML): model/endpoint, suites with their options, sampling, k, seeds,
output directory. Everything is validated before any request; errors name the key.

    [run]        name, output_dir, concurrency, seed, keep_token_times, max_error_rate, deadline_s,
                 progress_every_s
    [model]      engine = "reference" (checkpoint, dtype, device, batch_size)
                 engine = "openai"    (name, endpoints, api_key_env, request_timeout_s, max_retries, backoff_s, cooldown_s)
    [sampling]   max_tokens, temperature, top_p, top_k   (paper defaults: T=1.0, top_p=0.95)
    [suites.NAME] samples, limit, data, revision, split, max_tokens, + the suite's own options
"""
from __future__ import annotations

import copy
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from m1bench.harness.core.files import InputError
from m1bench.suites import get_suite, suite_names
from m1bench.suites.base import Option

DEMO_CONFIG = "demo.toml"


class ConfigError(InputError):
    """A run config that cannot run; `key` (e.g. "run.concurrency") names the config key at fault."""

    def __init__(self, message: str, hint: str | None = None, key: str | None = None):
        super().__init__(message, hint)
        self.key = key


def bad_key(key: str, why: str, hint: str | None = None) -> ConfigError:
    return ConfigError(f"config key {key}: {why}", hint, key)


TABLES: dict[str, dict[str, Option]] = {
    "run": {
        "name": Option(str, "run", "run name; the default output directory is runs/<name>"),
        "output_dir": Option(str, None, "where records.jsonl and results.json go"),
        "concurrency": Option(int, 8, "requests in flight at once"),
        "seed": Option(int, 0, "base seed; each sample gets its own seed derived from it"),
        "keep_token_times": Option(bool, False, "store per-token arrival times in the records"),
        "max_error_rate": Option((int, float), 0.0, "the run fails (exit 1) when a suite's share of samples "
                                 "with a request or grading error is above this (0: any error fails it)"),
        "deadline_s": Option((int, float), 0, "stop the run after this many seconds; unfinished samples are "
                             "sent on the next run (0: no limit)"),
        "progress_every_s": Option((int, float), 10.0, "seconds between plain progress lines when the output "
                                   "is not a terminal (a CI log)"),
    },
    "model": {
        "engine": Option(str, "reference", "which client answers", choices=("reference", "openai")),
        "checkpoint": Option(str, "tiny", "reference engine: checkpoint directory, or 'tiny'"),
        "dtype": Option(str, "float32", "reference engine dtype", choices=("float32", "bfloat16", "float16")),
        "device": Option(str, "cpu", "reference engine device"),
        "batch_size": Option(int, 8, "reference engine: requests generated together"),
        "routing_stats": Option(bool, False, "reference engine: record per-request expert-routing statistics"),
        "name": Option(str, None, "openai: the served model name"),
        "architecture": Option(str, None, "what the samples' FLOPs are priced on: a preset or named spec "
                               "(m1, deepseek-r1, ...) or a config.json path (default: the reference engine's "
                               "checkpoint; m1 when the served name says MiniMax-M1)"),
        "endpoints": Option(list, [], "openai: base URLs (…/v1) of the replicas"),
        "api_key_env": Option(str, "OPENAI_API_KEY", "openai: environment variable holding the API key"),
        "request_timeout_s": Option((int, float), 3600, "openai: wall-clock limit per request attempt"),
        "max_retries": Option(int, 5, "openai: retries after the first attempt"),
        "backoff_s": Option((int, float), 1.0, "openai: first retry delay of a request (doubles each retry; "
                            "a Retry-After header wins)"),
        "cooldown_s": Option((int, float), 10.0, "openai: once an endpoint's failure rate opens its circuit "
                             "breaker, how often one probe request is let through"),
    },
    "sampling": {
        "max_tokens": Option(int, 32768, "generation limit; outputs cut here count as truncated"),
        "temperature": Option((int, float), 1.0, "sampling temperature"),
        "top_p": Option((int, float), 0.95, "nucleus sampling"),
        "top_k": Option(int, 0, "top-k filter (0: off)"),
    },
}

_CHECKS = {
    "run.concurrency": (lambda v: v >= 1, "must be >= 1"),
    "model.batch_size": (lambda v: v >= 1, "must be >= 1"),
    "model.max_retries": (lambda v: v >= 0, "must be >= 0"),
    "model.request_timeout_s": (lambda v: v > 0, "must be > 0"),
    "run.max_error_rate": (lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    "run.deadline_s": (lambda v: v >= 0, "must be >= 0"),
    "run.progress_every_s": (lambda v: v > 0, "must be > 0"),
    "sampling.max_tokens": (lambda v: v >= 1, "must be >= 1"),
    "sampling.temperature": (lambda v: v >= 0, "must be >= 0"),
    "sampling.top_p": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "sampling.top_k": (lambda v: v >= 0, "must be >= 0"),
    "samples": (lambda v: v >= 1, "must be >= 1"),
    "limit": (lambda v: v >= 1, "must be >= 1"),
    "max_tokens": (lambda v: v >= 1, "must be >= 1"),
}


@dataclass
class ModelConfig:
    engine: str
    checkpoint: str
    dtype: str
    device: str
    batch_size: int
    routing_stats: bool
    name: str | None
    architecture: str | None
    endpoints: list[str]
    api_key_env: str
    request_timeout_s: float
    max_retries: int
    backoff_s: float
    cooldown_s: float

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env)


@dataclass
class RunConfig:
    run: dict[str, Any]
    model: ModelConfig
    sampling: dict[str, Any]
    suites: dict[str, dict[str, Any]]  # name -> validated options (defaults filled in)
    source: str = "<flags>"
    raw: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] | None = None  # a [server] table: start this server for the run

    @property
    def output_dir(self) -> Path:
        return Path(self.run["output_dir"] or Path("runs") / self.run["name"])


def _type_name(t: type | tuple[type, ...]) -> str:
    return " or ".join(x.__name__ for x in (t if isinstance(t, tuple) else (t,)))


def _check_value(key: str, value: Any, opt: Option, short: str) -> Any:
    types = opt.type if isinstance(opt.type, tuple) else (opt.type,)
    if isinstance(value, bool) and bool not in types:  # TOML true is not an int here
        raise bad_key(key, f"expected {_type_name(opt.type)}, got bool {value!r}")
    if not isinstance(value, types):
        raise bad_key(key, f"expected {_type_name(opt.type)}, got {type(value).__name__} {value!r}")
    if opt.choices is not None and value not in opt.choices:
        raise bad_key(key, f"{value!r} is not one of {', '.join(map(repr, opt.choices))}")
    check = _CHECKS.get(key) or _CHECKS.get(short)
    if check and not check[0](value):
        raise bad_key(key, f"{value!r} {check[1]}")
    return value


def _table(name: str, raw: Any, schema: dict[str, Option]) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad_key(name, f"expected a table, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise bad_key(f"{name}.{unknown[0]}", "unknown key", hint=f"[{name}] takes {', '.join(sorted(schema))}")
    out = {}
    for key, opt in schema.items():
        out[key] = opt.default if raw.get(key) is None else _check_value(f"{name}.{key}", raw[key], opt, key)
    return out


def validate(raw: dict[str, Any], base_dir: Path | None = None, source: str = "<flags>") -> RunConfig:
    """Check every key of a parsed config and fill in defaults. Relative `data` paths are read
    relative to the config file's directory."""
    unknown = sorted(set(raw) - {*TABLES, "suites", "server"})
    if unknown:
        raise bad_key(unknown[0], "unknown table (known: run, model, sampling, server, suites)")
    server = raw.get("server")  # checked by the command that starts it (m1bench.harness.serve.hook)
    run = _table("run", raw.get("run"), TABLES["run"])
    model = ModelConfig(**_table("model", raw.get("model"), TABLES["model"]))
    sampling = _table("sampling", raw.get("sampling"), TABLES["sampling"])
    if model.engine == "openai" and server is None:  # a [server] table provides the endpoint
        if not model.endpoints:
            raise bad_key("model.endpoints", "engine 'openai' needs at least one endpoint URL")
        if not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in model.endpoints):
            raise bad_key("model.endpoints", f"expected http(s) URLs, got {model.endpoints!r}")
        if not model.name:
            raise bad_key("model.name", "engine 'openai' needs the served model name")
    suites_raw = raw.get("suites")
    if not isinstance(suites_raw, dict) or not suites_raw:
        raise bad_key("suites", "at least one [suites.NAME] table is needed")
    suites = {}
    known = suite_names()
    for name, opts in suites_raw.items():
        if name not in known:
            raise bad_key(f"suites.{name}", "unknown suite", hint=f"the suites are {', '.join(known)}; "
                          "`m1bench suites` lists their options")
        suite = get_suite(name)
        checked = _table(f"suites.{name}", opts, suite.all_options())
        data = checked.get("data")
        if data and base_dir is not None and not Path(data).is_absolute() and (base_dir / data).exists():
            checked["data"] = str((base_dir / data).resolve())
        if checked.get("samples") is None:
            checked["samples"] = suite.default_samples
        suites[name] = checked
    return RunConfig(run=run, model=model, sampling=sampling, suites=suites, source=source, raw=raw, server=server)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:  # its message ends "(at line L, column C)"
        at = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(e))
        where, what = (f"{path}:{at[2]}:{at[3]}", at[1]) if at else (str(path), str(e))
        raise ConfigError(f"{where}: invalid TOML ({what})") from None


def demo_config_path() -> Path:
    return Path(str(resources.files("m1bench.harness.eval") / "configs" / DEMO_CONFIG))


def load_config(path: str | Path | None = None, edit: Callable[[dict[str, Any]], None] | None = None) -> RunConfig:
    """Read a TOML run config (the embedded demo when `path` is None), let `edit` apply flag
    overrides to the parsed dict (so their errors name config keys too), validate."""
    path = Path(path) if path else demo_config_path()
    raw = read_toml(path)
    in_file = copy.deepcopy(raw)
    if edit is not None:
        edit(raw)
    try:
        return validate(raw, base_dir=path.parent.resolve(), source=str(path))
    except ConfigError as e:  # a value the file holds is named with the file; one a flag set, without
        if e.key is None or _lookup(in_file, e.key) is _MISSING or _lookup(in_file, e.key) != _lookup(raw, e.key):
            raise
        raise ConfigError(f"{path}: {e}", e.hint, e.key) from None


_MISSING = object()


def _lookup(table: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(table, dict) or part not in table:
            return _MISSING
        table = table[part]
    return table


def merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = v
