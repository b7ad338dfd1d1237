"""Matplotlib figures for the profiling commands: PNG + SVG, labelled axes with units, a provenance line."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, stem: Path, provenance: str) -> list[Path]:
    fig.text(0.01, 0.005, provenance, fontsize=6.5, color="0.4", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths


def _k(x, _pos=None) -> str:
    if x < 1024:
        return f"{x:g}"
    return f"{x / 1024:g}K" if x < 1024 ** 2 else f"{x / 1024 ** 2:g}M"


def flops_curves(lengths: np.ndarray, cumulative: dict[str, np.ndarray], per_token: dict[str, np.ndarray],
                 stem: Path, provenance: str, prompt: int, baseline: str | None = None,
                 run_lengths: dict[str, np.ndarray] | None = None) -> list[Path]:
    """Left: cumulative FLOPs to generate N tokens (the paper's Figure 1 right); middle: FLOPs of the
    token at each position; right: each model's cumulative FLOPs over `baseline`'s. Log axes: the
    curves span orders of magnitude. run_lengths: a run's generated tokens per sample, per suite,
    drawn as histograms over the first two panels (right-hand axis: samples)."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.4))
    for name, y in cumulative.items():
        a.plot(lengths, y, label=name, lw=2)
    a.set(xlabel=f"generation length N (tokens, after a {prompt}-token prompt)",
          ylabel="theoretical inference FLOPs (to generate N tokens)", title="Cumulative forward FLOPs")
    for name, y in per_token.items():
        b.plot(lengths, y / 1e9, label=name, lw=2)
    b.set(xlabel="context position of the token (tokens)", ylabel="GFLOPs per generated token",
          title="Per-token forward FLOPs")
    if baseline is not None:
        for name, y in cumulative.items():
            if name != baseline:
                c.plot(lengths, y / cumulative[baseline], label=f"{name} / {baseline}", lw=2)
        c.axhline(1, color="0.5", lw=0.8)
        c.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        c.set(xlabel="generation length N (tokens)", ylabel=f"cumulative FLOPs / {baseline}'s",
              title=f"FLOPs relative to {baseline}")
    else:
        c.text(0.5, 0.5, "no baseline among the models: no ratio to draw", ha="center", va="center",
               transform=c.transAxes)
    if run_lengths:
        bins = np.geomspace(max(lengths[0], 1), lengths[-1], 41)
        for ax in (a, b):
            h = ax.twinx()
            h.hist(list(run_lengths.values()), bins=bins, label=[f"this run: {k}" for k in run_lengths],
                   alpha=0.3, histtype="stepfilled")
            h.set_ylabel("samples that generated that many tokens")
            h.legend(loc="center right", fontsize=8)
    for ax in (a, b, c):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_k))
        ax.grid(alpha=0.3, which="both")
        if ax.lines:
            ax.legend()
        ax.set_xlim(lengths[0], lengths[-1])
    a.set_yscale("log")
    b.set_yscale("log")
    return _save(fig, stem, provenance)


def latency_curves(results: dict[str, dict], stem: Path, provenance: str) -> list[Path]:
    """results[variant] = {"context": [...], "prefill_s": [...], "decode_s": [...]}; log-log latency vs
    context and the softmax-twin / hybrid speed-up."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 4.2))
    for name, r in results.items():
        ctx = np.asarray(r["context"], dtype=float)
        pre = np.asarray(r["prefill_s"], dtype=float)
        dec = np.asarray(r["decode_s"], dtype=float)
        a.plot(ctx, pre, "o-", label=name)
        b.plot(ctx, dec * 1e3, "o-", label=name)
    if {"hybrid", "softmax-twin"} <= set(results):
        base, other = results["hybrid"], results["softmax-twin"]
        common = sorted(set(base["context"]) & set(other["context"]))
        pick = lambda r, key: np.array([r[key][r["context"].index(x)] for x in common], dtype=float)  # noqa: E731
        for key, label in (("prefill_s", "prefill"), ("decode_s", "decode step")):
            c.plot(common, pick(other, key) / pick(base, key), "o-", label=label)
        c.axhline(1, color="0.5", lw=0.8)
        c.set(ylabel="softmax-twin time / hybrid time (x)", title="Hybrid speed-up over the softmax twin")
        c.legend()
    a.set(ylabel="prefill time (s)", title="Prefill")
    b.set(ylabel="decode time per token (ms)", title="Decode step at context")
    for ax in (a, b, c):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context length (tokens)")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_k))
        ax.grid(alpha=0.3, which="both")
    for ax in (a, b):
        ax.set_yscale("log")
        ax.legend()
    return _save(fig, stem, provenance)


def kernel_curves(rows: list[dict], stem: Path, provenance: str) -> list[Path]:
    """rows: {"phase", "impl", "context", "median_ms"}; one panel per phase."""
    phases = sorted({r["phase"] for r in rows})
    fig, axes = plt.subplots(1, len(phases), figsize=(5.5 * len(phases), 4.2), squeeze=False)
    for ax, phase in zip(axes[0], phases):
        for impl in sorted({r["impl"] for r in rows if r["phase"] == phase}):
            pts = sorted((r["context"], r["median_ms"]) for r in rows if r["phase"] == phase and r["impl"] == impl)
            ax.plot(*zip(*pts), "o-", label=impl)
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="sequence / context length (tokens)", ylabel="time (ms, median)",
               title=f"Kernel: {phase}")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_k))
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    return _save(fig, stem, provenance)


def server_curves(rows: list[dict], stem: Path, provenance: str) -> list[Path]:
    """rows: {"prompt_words", "prompt_tokens", "concurrency", "ttft_p50_s", "tpot_p50_s", "output_tok_per_s"};
    one line per prompt length."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    keys = (("ttft_p50_s", "TTFT p50 (ms)", 1e3), ("tpot_p50_s", "TPOT p50 (ms)", 1e3),
            ("output_tok_per_s", "output throughput (tokens/s)", 1))
    levels = sorted({r["concurrency"] for r in rows})
    for ax, (key, label, scale) in zip(axes, keys):
        for words in sorted({r["prompt_words"] for r in rows}):
            mine = [r for r in rows if r["prompt_words"] == words]
            pts = sorted((r["concurrency"], r[key]) for r in mine if r[key] is not None)
            tokens = int(np.median([r["prompt_tokens"] for r in mine]))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] * scale for p in pts], "o-", label=f"prompt ~{tokens} tokens")
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set(xlabel="concurrent requests", ylabel=label)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    return _save(fig, stem, provenance)
