"""Paired tests for a baseline/candidate pair scored on the same items.

Binary per-item outcomes (pass@1 with one sample, maj@k, resolved/unresolved) get McNemar's exact
test: under "no change" each discordant item is equally likely to go either way, so the count
that got worse is Binomial(discordant, 1/2). Graded per-item scores (avg@k over k samples, pass@k
estimates, partial-credit ratios) get a paired bootstrap over items. Both also report a
bootstrap 95% CI of the mean paired difference."""
from __future__ import annotations

from math import comb

import numpy as np

BOOTSTRAP_ITERS = 10000


def is_binary(*arrays: np.ndarray) -> bool:
    return all(np.isin(a, (0.0, 1.0)).all() for a in arrays)


def mcnemar_exact(base: np.ndarray, cand: np.ndarray) -> tuple[float, int, int]:
    """Two-sided exact McNemar p-value, items that got worse, items that got better."""
    worse = int(((base == 1) & (cand == 0)).sum())
    better = int(((base == 0) & (cand == 1)).sum())
    n = worse + better
    if n == 0:
        return 1.0, 0, 0
    tail = sum(comb(n, i) for i in range(min(worse, better) + 1)) / 2**n
    return min(1.0, 2 * tail), worse, better


def bootstrap_delta(base: np.ndarray, cand: np.ndarray, iters: int = BOOTSTRAP_ITERS,
                    seed: int = 0) -> tuple[float, tuple[float, float], float]:
    """Mean paired difference (cand - base), its percentile 95% CI and a two-sided p-value (the
    bootstrap distribution shifted to mean zero: how often a null difference is as large)."""
    d = cand - base
    mean = float(d.mean())
    if np.ptp(d) <= 1e-12:  # no spread: the difference is exact
        return mean, (mean, mean), (1.0 if mean == 0 else 0.0)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(iters, len(d)))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    p = (np.count_nonzero(np.abs(means - mean) >= abs(mean)) + 1) / (iters + 1)
    return mean, (float(lo), float(hi)), float(p)


def paired_test(base: np.ndarray, cand: np.ndarray, seed: int = 0) -> dict:
    """{test, delta, ci95, p_value[, worse, better]} for per-item scores of the same items."""
    base, cand = np.asarray(base, dtype=float), np.asarray(cand, dtype=float)
    if base.shape != cand.shape or base.ndim != 1 or len(base) == 0:
        raise ValueError(f"paired test needs two equal-length non-empty vectors, got {base.shape} and {cand.shape}")
    delta, ci, p_boot = bootstrap_delta(base, cand, seed=seed)
    if is_binary(base, cand):
        p, worse, better = mcnemar_exact(base, cand)
        return {"test": "mcnemar-exact", "delta": delta, "ci95": list(ci), "p_value": p, "worse": worse, "better": better}
    return {"test": "paired-bootstrap", "delta": delta, "ci95": list(ci), "p_value": p_boot}
