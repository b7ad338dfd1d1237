"""What each sample cost, tied to its score: tokens split prompt / reasoning / answer, the analytic
forward FLOPs of the served architecture (model/flops.py), the measured latency; per suite the
totals and distributions, the score against a generation budget and against FLOPs, and the same
token counts priced on other architectures (the counterfactuals).

Multi-turn samples (TAU-bench, SWE-bench) sum over their turns. No prefix cache is assumed (the
reference engine has none): every turn's whole prompt is prefilled again, re-read context included.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from m1bench.harness.core.files import InputError
from m1bench.harness.core.types import Completion
from m1bench.model.arch import ArchSpec, NAMED, load_spec, softmax_twin
from m1bench.model.flops import executed_block_size, request_flops

PREFIX_CACHE = False
COUNTERFACTUALS = ("m1", "m1-softmax", "deepseek-r1", "qwen3-235b")
THINK_END = "</think>"
FLOPS_NOTE = ("analytic forward FLOPs (model/flops.py): causal prefill of each turn's whole prompt (no prefix "
              "cache), one decode forward per further sampled token")


@dataclass(frozen=True)
class Architecture:
    """The served architecture (None: unknown, `why` says so) and the engine's token accounting."""

    spec: ArchSpec | None
    source: str            # where the spec came from, or why there is none
    eos_uncounted: bool    # the engine's completion count leaves out a final EOS it sampled (reference engine)


def served_architecture(model_cfg: Any, engine: dict[str, Any]) -> Architecture:
    """The reference engine's checkpoint config; else `[model] architecture` (a preset / named spec or a
    config.json path); else m1 when the served name says MiniMax-M1; else none, with the reason."""
    named = getattr(model_cfg, "architecture", None)
    try:
        if named:
            return Architecture(load_spec(named), f"[model] architecture = {named!r}", engine.get("engine") == "reference")
        if engine.get("engine") == "reference" and engine.get("checkpoint"):
            spec = load_spec(engine["checkpoint"])
            if engine.get("device", "cpu") == "cpu":  # the CPU lightning path prefills in its own blocks
                spec = replace(spec, lightning_block=executed_block_size())
            return Architecture(spec, f"checkpoint {engine['checkpoint']}/config.json", True)
    except InputError as e:
        raise InputError(f"model.architecture: {e}") from None
    served = str(getattr(model_cfg, "name", None) or engine.get("model_id") or "")
    if re.search(r"minimax[-_]?m1", served, re.I):
        return Architecture(NAMED["m1"](), f"m1 (the served name {served!r} says MiniMax-M1)", False)
    return Architecture(None, f"FLOPs left out: the architecture of {served or 'the model'!r} is unknown "
                              "(set [model] architecture to a preset, a named spec or a config.json path)", False)


def turns(c: Completion) -> list[tuple[int, int]]:
    """(prompt, completion) tokens of every request the sample made: an episode's steps, or the one call."""
    steps = [tuple(s["tokens"]) for s in (c.trajectory or []) if isinstance(s.get("tokens"), list)]
    return steps or [(c.prompt_tokens, c.completion_tokens)]


def reasoning_tokens(c: Completion, tokenizer: Any) -> int | None:
    """Tokens of the reasoning: as the endpoint's usage split them where it did (one turn), else
    `<think>` ... `</think>` re-encoded with the model's tokenizer; None when neither is at hand."""
    if c.reasoning_tokens is not None and not c.trajectory:
        return c.reasoning_tokens
    texts = [s.get("reasoning") or "" for s in (c.trajectory or []) if "tokens" in s] or [c.reasoning]
    if tokenizer is None:
        return None if any(texts) else 0
    n = sum(len(tokenizer.encode(f"<think>{t}{THINK_END}")) for t in texts if t)
    return min(n, c.completion_tokens)


def sample_compute(c: Completion, arch: Architecture, tokenizer: Any = None) -> dict[str, Any]:
    """The per-sample compute fields of a record."""
    reasoning = reasoning_tokens(c, tokenizer)
    out: dict[str, Any] = {
        "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
        "reasoning_tokens": reasoning, "answer_tokens": None if reasoning is None else c.completion_tokens - reasoning,
        "turns": len(turns(c)), "ttft_s": c.ttft_s, "total_s": c.total_s,
        "flops": None if arch.spec is None else priced(arch.spec, c, arch.eos_uncounted),
    }
    return out


def priced(spec: ArchSpec, c: Completion, eos_uncounted: bool = False) -> float:
    """FLOPs of a sample's turns on `spec`. A turn that stopped at EOS sampled one token more than the
    reference engine counts (the EOS), after one more decode forward."""
    eos = int(eos_uncounted and c.finish_reason in ("stop", "tool_calls"))
    return float(sum(request_flops(spec, p, n + eos) for p, n in turns(c)))


# ---- per suite ----------------------------------------------------------------------------------

def _distribution(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    a = np.asarray(xs, dtype=np.float64)
    return {"mean": float(a.mean()), "p10": float(np.percentile(a, 10)), "p50": float(np.median(a)),
            "p90": float(np.percentile(a, 90)), "max": float(a.max()), "total": float(a.sum())}


def _budgets(limit: float, points: int = 24) -> list[float]:
    return sorted({float(x) for x in np.geomspace(max(limit / 2 ** 12, 1.0), limit, points).round()} | {float(limit)})


def score_within(samples: list[dict[str, Any]], key: str, budgets: list[float]) -> list[float]:
    """Mean credit (per problem, then over problems) when a sample counts only if it finished (not cut
    at the token limit) within the budget of `key`."""
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_problem.setdefault(s["problem_id"], []).append(s)
    out = []
    for b in budgets:
        per = [np.mean([s["credit"] if s["finished"] and s[key] <= b else 0.0 for s in v]) for v in by_problem.values()]
        out.append(float(np.mean(per)))
    return out


def suite_compute(samples: list[dict[str, Any]], arch: Architecture, max_tokens: int) -> dict[str, Any]:
    """samples: {"problem_id", "credit", "finished", "completion": Completion, "compute": sample_compute(...)}."""
    comp = [s["compute"] for s in samples]
    gen = [float(c["completion_tokens"]) for c in comp]
    rows = [{"problem_id": s["problem_id"], "credit": s["credit"], "finished": s["finished"],
             "tokens": float(s["compute"]["completion_tokens"]), "flops": s["compute"]["flops"]} for s in samples]
    out: dict[str, Any] = {
        "architecture": arch.spec.name if arch.spec else None, "architecture_source": arch.source,
        "prefix_cache": PREFIX_CACHE, "flops_note": FLOPS_NOTE,
        "tokens": {"prompt": _distribution([float(c["prompt_tokens"]) for c in comp]), "generated": _distribution(gen),
                   "reasoning": _distribution([float(c["reasoning_tokens"]) for c in comp if c["reasoning_tokens"] is not None]),
                   "answer": _distribution([float(c["answer_tokens"]) for c in comp if c["answer_tokens"] is not None])},
        "flops": None, "budget_curve": None, "flops_curve": None, "counterfactual": [],
        "curve_rule": "a sample counts as solved at budget B only if it finished (not cut at the token limit) "
                      "within B; score = mean credit per problem, averaged over problems",
    }
    if not samples:
        return out
    budgets = _budgets(max(max_tokens, max(gen)))
    out["budget_curve"] = {"budget_tokens": budgets, "score": score_within(rows, "tokens", budgets)}
    if arch.spec is None:
        return out
    flops = [float(c["flops"]) for c in comp]
    out["flops"] = _distribution(flops)
    grid = [float(x) for x in np.geomspace(min(flops), max(flops), 24)] if max(flops) > 0 else [0.0]
    out["flops_curve"] = {"flops_per_problem": grid, "score": score_within(rows, "flops", grid)}
    here = sum(flops)
    for name, spec in counterfactual_specs(arch.spec).items():
        there = sum(priced(spec, s["completion"], arch.eos_uncounted) for s in samples)
        out["counterfactual"].append({"architecture": name, "flops_total": there,
                                      "flops_per_problem": there / len({s['problem_id'] for s in samples}),
                                      "served_over_this": here / there if there else None})
    return out


def counterfactual_specs(served: ArchSpec) -> dict[str, ArchSpec]:
    """The served architecture, its all-softmax twin (when it has lightning layers), M1, its twin, R1, Qwen3."""
    specs = {served.name: served}
    if served.count("lightning"):
        twin = softmax_twin(served)
        specs[twin.name] = twin
    for name in COUNTERFACTUALS:
        specs.setdefault(name, NAMED[name]())
    return specs
