"""OpenAI-MRCR grading, token bins and the aggregates a report prints; shared by the OpenAI-MRCR
suite and the Michelangelo-style MRCR suite (both write the same fields, so one grader scores both).

Facts from the openai/mrcr dataset card (reimplemented here, not copied):
- score: 0 unless the response starts with `random_string_to_prepend`; otherwise that prefix is
  removed from the response and from the answer, and the score is difflib's
  SequenceMatcher(None, response, answer).ratio() (default arguments, autojunk included).
- bins: by the number of prompt + answer tokens (o200k_base; prompt tokens = the sum over the
  messages of the tokens of each message's content), edges 4096, 8192, …, 1048576:
  [4096, 8192], (8192, 16384], …, (524288, 1048576]; 100 samples per (needle count, bin).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Iterable

GRADER = "openai-mrcr SequenceMatcher ratio (difflib, prefix-gated)"

BIN_EDGES = (4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576)
BELOW, ABOVE = "<4K", ">1M"  # outside the official bins (short test runs; oversize rows)


def grade(response: str, answer: str, random_string_to_prepend: str) -> float:
    """The official MRCR score of one response (reasoning already removed)."""
    if not response.startswith(random_string_to_prepend):
        return 0.0
    response = response.removeprefix(random_string_to_prepend)
    answer = answer.removeprefix(random_string_to_prepend)
    return float(SequenceMatcher(None, response, answer).ratio())


def _size(n: int) -> str:
    return f"{n >> 20}M" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10}K"


BIN_LABELS = tuple(f"{_size(lo)}-{_size(hi)}" for lo, hi in zip(BIN_EDGES, BIN_EDGES[1:]))
ALL_LABELS = (BELOW, *BIN_LABELS, ABOVE)


def bin_label(tokens: int) -> str:
    """The official bin of a prompt+answer token count: the first is closed on both ends, the
    others are (lo, hi]; counts outside [4096, 1048576] get BELOW / ABOVE."""
    if tokens < BIN_EDGES[0]:
        return BELOW
    for hi, label in zip(BIN_EDGES[1:], BIN_LABELS):
        if tokens <= hi:
            return label
    return ABOVE


def bin_range(label: str) -> str:
    """Human-readable token range of a bin label, for the definitions in the output."""
    if label not in ALL_LABELS:  # a generated-length label ("128K"): samples made at that length
        return "(generated at that length)"
    if label == BELOW:
        return f"[0, {BIN_EDGES[0]})"
    if label == ABOVE:
        return f"({BIN_EDGES[-1]}, inf)"
    i = BIN_LABELS.index(label)
    return f"{'[' if i == 0 else '('}{BIN_EDGES[i]}, {BIN_EDGES[i + 1]}]"


@dataclass(frozen=True)
class Aggregate:
    """A named number of the report: the mean score of the samples with these needle counts in
    these bins (pointwise = one bin; average = mean over samples of several bins)."""

    name: str
    needles: tuple[int, ...]
    bins: tuple[str, ...]
    mode: str
    measure: str = "o200k_base prompt+answer tokens"

    def definition(self) -> str:
        bins = ", ".join(f"{b} {bin_range(b)}" for b in self.bins)
        return (f"mean SequenceMatcher score of the {'/'.join(map(str, self.needles))}-needle samples in "
                f"{'bin' if len(self.bins) == 1 else 'bins'} {bins} ({self.mode}; bins by {self.measure})")


def length_label(tokens: int) -> str:
    """Label of a generated length: 131072 -> "128K", 1048576 -> "1M", 5000 -> "5000"."""
    return _size(tokens) if tokens % 1024 == 0 else str(tokens)


def paper_aggregates(needles: Iterable[int] = (2,), mode: str = "pointwise",
                     measure: str = "o200k_base prompt+answer tokens") -> list[Aggregate]:
    """The "128K" and "1M" numbers of the M1 paper's table. The paper does not define them; the
    default follows the GPT-4.1 launch table that introduced them (2 needles, the one bin ending at
    128K resp. 1M). `average` instead averages every bin from 4K up to that length."""
    needles = tuple(sorted(set(needles)))
    if mode not in ("pointwise", "average"):
        raise ValueError(f"aggregate mode must be 'pointwise' or 'average', got {mode!r}")
    out = []
    for name, last in (("128K", "64K-128K"), ("1M", "512K-1M")):
        upto = BIN_LABELS[: BIN_LABELS.index(last) + 1]
        out.append(Aggregate(name, needles, (last,) if mode == "pointwise" else upto, mode, measure))
    return out


def _cell(scores: list[float]) -> dict[str, Any]:
    return {"score": sum(scores) / len(scores) if scores else None, "n": len(scores),
            "exact": sum(s == 1.0 for s in scores)}


def breakdown(samples: Iterable[dict[str, Any]], aggregates: list[Aggregate],
              bin_order: Iterable[str] = ALL_LABELS) -> dict[str, Any]:
    """Per bin × needle count, per needle count, per bin, overall and the named aggregates, from
    per-sample dicts {"score": float, "bin": label, "n_needles": int}. Cells without samples are
    left out; each aggregate says how many samples it rests on."""
    by = defaultdict(list)
    for s in samples:
        by[(s["bin"], int(s["n_needles"]))].append(float(s["score"]))
    order = [b for b in bin_order if any(k[0] == b for k in by)] + sorted({k[0] for k in by} - set(bin_order))
    needles = sorted({k[1] for k in by})
    per_bin_needles = {b: {str(n): _cell(by[(b, n)]) for n in needles if (b, n) in by} for b in order}
    per_needles = {str(n): _cell([x for (b, m), v in by.items() if m == n for x in v]) for n in needles}
    per_bin = {b: _cell([x for (c, _), v in by.items() if c == b for x in v]) for b in order}
    aggs = {}
    for a in aggregates:
        cell = _cell([x for (b, n), v in by.items() if b in a.bins and n in a.needles for x in v])
        aggs[a.name] = {**cell, "definition": a.definition(), "needles": list(a.needles), "bins": list(a.bins),
                        "mode": a.mode}
    return {"metric": "mean SequenceMatcher ratio (0 without the random prefix)",
            "overall": _cell([x for v in by.values() for x in v]),
            "aggregates": aggs, "per_needles": per_needles, "per_bin": per_bin,
            "per_bin_needles": per_bin_needles}
