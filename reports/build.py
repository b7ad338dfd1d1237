"""Build report.json (schema version 2) from what a run wrote: results.json (metrics, counts, data
facts, config, engine) and the run's per-sample records; add what makes the numbers comparable
(prompt and template hashes, seeds, filters, package versions, hardware)."""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from m1bench.harness.core.provenance import REPO, hardware, package_versions, python_info
from m1bench.harness.core.records import RecordsError, read_records
from m1bench.reports.schema import SCHEMA_VERSION

# Options every suite takes (suites/base.py COMMON_OPTIONS); the rest are the suite's own.
_COMMON_OPTIONS = {"samples", "limit", "data", "revision", "split", "max_tokens"}
_DATASET_SKIP = {"source", "window", "excluded", "needles", "bins"}
# results.json suite keys the report carries in its own fields; any other key goes to `extra`.
_RESULTS_CONSUMED = {"suite_version", "grader", "data", "options", "environment", "k", "n_problems", "metrics", "counts",
                     "tokens", "latency", "per_problem", "compute"}
SEED_DERIVATION = ("each sample's seed = int(sha256(f'{base}:{suite}:{problem_id}:{sample}')[:8], 16) & 0x7fffffff "
                   "(core.types.sample_seed); the seed of every sample is in samples.jsonl")


def slug(text: str) -> str:
    """A path component from a free-form name (model names carry '/' and ':')."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return s or "unnamed"


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def finite(x: Any) -> Any:
    """NaN/inf -> None (strict JSON has no NaN; a metric over zero problems has no value)."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


# ---- records ----------------------------------------------------------------------------------
def latest_records(path: Path) -> dict[str, dict[str, Any]]:
    """The latest record of each request hash in an append-only records.jsonl (a partial last line
    left by a crash is skipped, as the runner does; a bad line elsewhere names file and line)."""
    from m1bench.reports.schema import ReportError

    try:
        return {rec["hash"]: rec for rec in read_records(Path(path))}
    except RecordsError as e:
        raise ReportError(str(e)) from None


def sort_samples(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (r["suite"], str(r["problem_id"]), r["sample"], r["hash"]))


# ---- sections ---------------------------------------------------------------------------------
def chat_template_sha256(checkpoint: str | None) -> str | None:
    """Hash of the chat template the reference engine applied (from the checkpoint's tokenizer files)."""
    if not checkpoint:
        return None
    cfg = Path(checkpoint) / "tokenizer_config.json"
    try:
        template = json.loads(cfg.read_text(encoding="utf-8")).get("chat_template")
    except (OSError, json.JSONDecodeError):
        return None
    return sha256_json(template) if template else None


def model_section(engine: dict[str, Any]) -> dict[str, Any]:
    checkpoint = engine.get("checkpoint")
    config = None
    if checkpoint and (Path(checkpoint) / "config.json").is_file():
        try:
            config = json.loads((Path(checkpoint) / "config.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            config = None
    name = engine.get("model") or (Path(checkpoint).name if checkpoint else None) or engine.get("model_id") or "model"
    return {"name": str(name), "checkpoint": checkpoint, "checkpoint_hash": engine.get("checkpoint_hash"),
            "config": config}


def _excluded(value: Any) -> list[dict[str, str]]:
    if not value:
        return []
    if isinstance(value, dict):
        return [{"id": str(k), "reason": str(v)} for k, v in value.items()]
    out = []
    for v in value:
        if isinstance(v, dict):
            out.append({"id": str(v.get("id")), "reason": str(v.get("reason", "excluded by configuration"))})
        else:
            out.append({"id": str(v), "reason": "excluded by configuration"})
    return out


def filters_section(opts: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    window = data.get("window")
    if window is None and (opts.get("start_date") or opts.get("end_date")):
        window = [opts.get("start_date"), opts.get("end_date")]
    return {"limit": opts.get("limit"), "window": list(window) if window else None,
            "needles": opts.get("needles") or data.get("needles"), "bins": opts.get("bins") or data.get("bins"),
            "excluded": _excluded(data.get("excluded") or opts.get("exclude") or opts.get("excluded"))}


def prompts_section(records: list[dict[str, Any]], template_sha: str | None) -> dict[str, Any]:
    per_problem: dict[str, Any] = {}
    systems: dict[str, str] = {}
    for rec in records:
        req = rec["request"]
        per_problem.setdefault(str(rec["problem_id"]), [req["messages"], req.get("tools")])
        for m in req["messages"]:
            if m.get("role") == "system":
                text = m["content"] if isinstance(m["content"], str) else json.dumps(m["content"], ensure_ascii=False)
                systems.setdefault(hashlib.sha256(text.encode()).hexdigest(), text)
    messages_sha = sha256_json(sorted(per_problem.items())) if per_problem else None
    return {"messages_sha256": messages_sha,
            "per_problem_sha256": {pid: sha256_json(v)[:16] for pid, v in sorted(per_problem.items())},
            "system_prompts": [{"sha256": h, "text": t} for h, t in sorted(systems.items())],
            "template_sha256": template_sha}


def _ci_method(m: dict[str, Any]) -> str | None:
    if m.get("ci95") is None:
        return None
    if m.get("stderr") is not None:
        return "normal approximation: value ± 1.96 × stderr (lm-eval)"
    return "percentile bootstrap over problems (harness.metrics.bootstrap_ci, 2000 resamples)"


def metric_section(m: dict[str, Any]) -> dict[str, Any]:
    ci = m.get("ci95")
    ci = [finite(float(ci[0])), finite(float(ci[1]))] if ci is not None else None
    if ci is not None and None in ci:
        ci = None
    out = {"metric": str(m["metric"]), "value": finite(m.get("value")), "ci95": ci, "ci_method": _ci_method(m),
           "n_problems": m.get("n_problems"), "n_samples": m.get("n_samples")}
    if m.get("stderr") is not None:
        out["stderr"] = finite(float(m["stderr"]))
    return out


def breakdown_metrics(name: str, s: dict[str, Any], records: list[dict[str, Any]],
                      seed: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Suites whose score lives in per-sample details (MRCR: SequenceMatcher ratio per token bin and
    needle count) report their named aggregates ("128K", "1M") as metrics `mrcr@<name>`, with a
    bootstrap CI over problems, plus the full breakdown."""
    details = [dict(r["score"]["details"], problem_id=str(r["problem_id"])) for r in records
               if r.get("status") == "ok" and r.get("score") and isinstance(r["score"].get("details"), dict)
               and {"bin", "n_needles", "score"} <= set(r["score"]["details"])]
    if not details:
        return [], None
    from m1bench.harness.core.metrics import bootstrap_ci
    from m1bench.suites import get_suite

    try:
        suite = get_suite(name)
    except KeyError:
        return [], None
    if not hasattr(suite, "breakdown"):
        return [], None
    b = suite.breakdown(details, s.get("options") or {}, s.get("data") or {})
    metrics = []
    for agg, cell in b.get("aggregates", {}).items():
        per_problem: dict[str, list[float]] = defaultdict(list)
        for d in details:
            if d["bin"] in cell["bins"] and int(d["n_needles"]) in cell["needles"]:
                per_problem[d["problem_id"]].append(float(d["score"]))
        if not per_problem or cell["score"] is None:
            continue
        means = np.array([np.mean(v) for v in per_problem.values()])
        lo, hi = bootstrap_ci(means, seed=seed)
        metrics.append({"metric": f"mrcr@{agg}", "value": float(cell["score"]), "ci95": [lo, hi],
                        "n_problems": len(means), "n_samples": int(cell["n"])})
    return metrics, b


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def generation_wall_s(records: list[dict[str, Any]]) -> float | None:
    """Wall clock of a suite's generation: first request sent to last answer received. Requests run
    concurrently, so the sum of their times is not how long generating took. A record's time is when
    its answer was recorded (whole seconds); it was sent total_s before."""
    spans = [(end - (r["completion"].get("total_s") or 0.0), end) for r in records
             if r.get("status") == "ok" and r.get("completion") and r.get("time")
             for end in [datetime.fromisoformat(r["time"]).timestamp()]]
    return max(e for _, e in spans) - min(s for s, _ in spans) if spans else None


def suite_section(name: str, s: dict[str, Any], records: list[dict[str, Any]], run_seed: int, run_sampling: dict[str, Any],
                  template_sha: str | None) -> dict[str, Any]:
    opts = dict(s.get("options") or {})
    data = dict(s.get("data") or {})
    done = [r["completion"] for r in records if r.get("status") == "ok" and r.get("completion")]
    sampling = {key: run_sampling[key] for key in ("max_tokens", "temperature", "top_p", "top_k")}
    if opts.get("max_tokens"):
        sampling["max_tokens"] = opts["max_tokens"]
    latency = s.get("latency") or {}
    tokens = s.get("tokens") or {}
    derived, breakdown = breakdown_metrics(name, s, records, run_seed)
    metrics = [metric_section(m) for m in derived + list(s.get("metrics") or [])]
    extra = {k: v for k, v in s.items() if k not in _RESULTS_CONSUMED}
    if breakdown is not None:
        extra["breakdown"] = breakdown
    return {
        "suite_version": str(s["suite_version"]),
        "dataset": {"id": data.get("source"), "revision": data.get("revision"), "content_hash": data.get("content_hash"),
                    **{k: v for k, v in data.items() if k not in _DATASET_SKIP}},
        "filters": filters_section(opts, data),
        "options": opts,
        "prompts": prompts_section(records, template_sha),
        "sampling": sampling,
        "k": s.get("k"),
        "seeds": {"base": run_seed, "derivation": SEED_DERIVATION},
        "grader": str(s.get("grader") or ""),
        "metrics": metrics,
        "primary_metric": metrics[0]["metric"] if metrics else None,
        "counts": dict(s.get("counts") or {}),
        "tokens": {"prompt": int(tokens.get("prompt", 0)), "completion": int(tokens.get("completion", 0)),
                   "mean_completion": (tokens.get("completion", 0) / len(done)) if done else None},
        "time": {"generation_s": generation_wall_s(records),
                 "mean_ttft_s": latency.get("mean_ttft_s", _mean([c["ttft_s"] for c in done if c.get("ttft_s") is not None])),
                 "mean_tpot_s": latency.get("mean_tpot_s", _mean([c["tpot_s"] for c in done if c.get("tpot_s") is not None]))},
        "per_problem": dict(s.get("per_problem") or {}),
        "environment": dict(s.get("environment") or {}),
        "extra": extra,
        **({"compute": s["compute"]} if s.get("compute") else {}),
    }


def portable(obj: Any) -> Any:
    """A report that reads the same on another machine: absolute paths inside the repository become
    repository-relative, those in the home directory "~/..."; what a path pointed at is pinned by the
    content hashes beside it (dataset content, checkpoint, samples)."""
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [portable(v) for v in obj]
    if not isinstance(obj, str) or not obj.startswith("/"):
        return obj
    path = Path(obj)
    for root, prefix in ((REPO, ""), (Path.home(), "~/")):
        try:
            return prefix + path.relative_to(root).as_posix()
        except ValueError:
            continue
    return obj


def run_id_for(results: dict[str, Any]) -> str:
    """<UTC creation time>-<run name>: sorts by time, says which config produced it."""
    stamp = re.sub(r"[^0-9T]", "", str(results.get("created", ""))[:19]) + "Z"
    name = (results.get("config") or {}).get("run", {}).get("name") or "run"
    return slug(f"{stamp}-{name}")


def build_report(results: dict[str, Any], samples: list[dict[str, Any]], *, run_id: str | None = None,
                 records_path: str | None = None) -> dict[str, Any]:
    """report.json without the `samples`, `plots` and `profiling` sections (the writer adds those)."""
    cfg = results.get("config") or {}
    run_cfg = cfg.get("run") or {}
    engine = dict(results.get("engine") or {})
    engine.setdefault("engine", "unknown")
    engine.setdefault("model_id", "unknown")
    by_suite: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in samples:
        by_suite[rec["suite"]].append(rec)
    template_sha = chat_template_sha256(engine.get("checkpoint")) if engine.get("engine") == "reference" else None
    seed = int(run_cfg.get("seed", 0))
    sampling = cfg.get("sampling") or {}
    packages = package_versions()
    packages.update({k: v for k, v in (results.get("packages") or {}).items() if v is not None})
    return portable({
        "schema_version": SCHEMA_VERSION,
        "kind": "m1bench-report",
        "run_id": run_id or run_id_for(results),
        "created": results.get("created"),
        "m1bench": dict(results.get("m1bench") or {"version": "unknown", "commit": None, "dirty": None}),
        "python": python_info(),
        "packages": packages,
        "hardware": hardware(),
        "engine": engine,
        "model": model_section(engine),
        "run": {"name": str(run_cfg.get("name", "run")), "config_source": cfg.get("source"), "seed": seed,
                "concurrency": run_cfg.get("concurrency"), "sampling": {k: sampling[k] for k in ("max_tokens", "temperature", "top_p", "top_k")},
                "wall_s": finite(results.get("wall_s")), "records": records_path},
        "suites": {name: suite_section(name, s, by_suite.get(name, []), seed, sampling, template_sha)
                   for name, s in results["suites"].items()},
    })
