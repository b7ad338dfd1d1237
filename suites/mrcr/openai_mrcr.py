"""OpenAI-MRCR (openai/mrcr): long multi-turn conversations with 2, 4 or 8 identical requests; the
model must reproduce the i-th answer behind a random prefix. Graded with the dataset card's
function (mrcr_grading.grade), binned by prompt+answer tokens in o200k_base (the model's tokenizer
when o200k_base cannot be had offline, and the results say so), reported per bin, per needle
count and as the "128K" / "1M" numbers, each defined in the results.

Requests whose prompt is over the model's context window are skipped and counted, never sent.
The window is option `context_window`, else the `model` checkpoint's max_position_embeddings;
prompts are counted as that model sees them (chat template) when `model` is given, else as the
official script counts them (o200k tokens of the message contents).

Per-sample score: `Score.details["score"]` (the MRCR number); `Score.correct` is exact reproduction
(score 1.0), so the runner's generic avg@k is an exact-match rate, not the MRCR metric. The MRCR
breakdown comes from `breakdown` (see mrcr_report).
"""
from __future__ import annotations

from typing import Any, ClassVar

from m1bench.harness.core.types import Completion, Score
from m1bench.suites import register
from m1bench.suites.base import Option, Problem, Suite
from m1bench.suites.mrcr.data import CountCache, Selection, build_problems, counter_key, iter_rows
from m1bench.suites.mrcr.grading import (
    ALL_LABELS,
    BIN_LABELS,
    GRADER,
    Aggregate,
    bin_label,
    bin_range,
    breakdown,
    grade,
    paper_aggregates,
)
from m1bench.suites.mrcr.tokens import (
    ModelCounter,
    bin_counter,
    count,
    load_model_counter,
    model_context_window,
)
from m1bench.suites.source import DataError


def _int_list(opts: dict[str, Any], key: str, allowed: tuple[int, ...] | None = None) -> tuple[int, ...]:
    values = opts[key]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise DataError(f"option {key}: expected a non-empty list of integers, got {values!r}")
    if allowed and not set(values) <= set(allowed):
        raise DataError(f"option {key}: {sorted(set(values) - set(allowed))} not among {list(allowed)}")
    return tuple(sorted(set(values)))


def score_sample(problem: Problem, completion: Completion) -> Score:
    """Score of one completion; `completion.text` is the answer with reasoning removed."""
    t = problem.target
    value = grade(completion.text, t["answer"], t["prefix"])
    return Score(correct=value == 1.0, answer=None, value=value, details={
        "score": value, "prefix_ok": completion.text.startswith(t["prefix"]), "bin": problem.meta["bin"],
        "n_needles": problem.meta["n_needles"], "tokens": problem.meta["tokens"]})


def window_counter(model: str | None, counter: Any) -> ModelCounter | None:
    if model is None:
        return None
    return counter if isinstance(counter, ModelCounter) else load_model_counter(model)


def context_window(opts: dict[str, Any]) -> int | None:
    if opts.get("context_window") is not None:
        return opts["context_window"]
    return model_context_window(opts["model"]) if opts.get("model") else None


class MRCRSuiteBase(Suite):
    """What both MRCR suites share: options, window counting, scoring, aggregation."""

    default_samples: ClassVar[int] = 1
    thread_safe_scoring: ClassVar[bool] = True
    common_options: ClassVar[dict[str, Option]] = {
        "needles": Option(list, [2, 4, 8], "needle counts to run (2, 4, 8)"),
        "model": Option(str, None, "checkpoint dir or 'tiny': its tokenizer (fallback counting, prompt length) and "
                                   "context window (max_position_embeddings)"),
        "context_window": Option(int, None, "skip (and count) requests whose prompt has more tokens than this"),
        "aggregate_needles": Option(list, [2], "needle counts in the '128K' and '1M' numbers"),
        "aggregate_mode": Option(str, "pointwise", "'128K'/'1M': the one bin ending there, or the average of all bins up to it",
                                 choices=("pointwise", "average")),
    }

    @property
    def grader(self) -> str:  # type: ignore[override]
        return f"{GRADER} v1"

    def score(self, problem: Problem, completion: Completion, opts: dict[str, Any]) -> Score:
        return score_sample(problem, completion)

    def aggregates(self, opts: dict[str, Any], measure: str = "o200k_base prompt+answer tokens") -> list[Aggregate]:
        return paper_aggregates(_int_list(opts, "aggregate_needles", (2, 4, 8)), opts["aggregate_mode"], measure)

    def breakdown(self, samples: list[dict[str, Any]], opts: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """The MRCR breakdown from per-sample score details and the suite's data facts (what load
        returned). Suite.aggregate (the runner's hook) sees only right/wrong outcomes, not scores,
        so mrcr_report calls this with the records."""
        out = breakdown(samples, self.aggregates(opts, data.get("bin_measure", "")), self.bin_order(opts))
        out["token_counter"] = data.get("token_counter")
        out["skipped_over_context_window"] = data.get("skipped_over_context_window")
        return out

    def bin_order(self, opts: dict[str, Any]) -> tuple[str, ...]:
        return ALL_LABELS


@register
class OpenAIMRCR(MRCRSuiteBase):
    name = "openai_mrcr"
    version = "1"
    default_data = "openai/mrcr"
    options: ClassVar[dict[str, Option]] = {
        **MRCRSuiteBase.common_options,
        "bins": Option(list, list(BIN_LABELS), f"token bins to run, of {', '.join(ALL_LABELS)}"),
        "tokenizer": Option(str, "auto", "bin counter: o200k_base, the model's tokenizer, or auto (o200k_base when "
                                         "available offline, else the model's, and the results say so)",
                            choices=("auto", "o200k_base", "model")),
    }

    def load(self, opts: dict[str, Any]) -> tuple[list[Problem], dict[str, Any]]:
        needles = _int_list(opts, "needles", (2, 4, 8))
        bins = tuple(opts["bins"])
        if not bins or not set(bins) <= set(ALL_LABELS):
            raise DataError(f"option bins: {sorted(set(bins) - set(ALL_LABELS)) or bins} not among {', '.join(ALL_LABELS)}")
        model = opts.get("model")
        counter, counter_facts = bin_counter(opts["tokenizer"], model)
        cache = CountCache(counter_key(counter))
        wcounter = window_counter(model, counter)
        wcache = CountCache(counter_key(wcounter) + ":chat") if wcounter else None

        def tokens_of(row) -> int:  # the bin measure: message contents + answer
            prompt = cache.get(row.digest + ":p", lambda: sum(count(counter, m["content"]) for m in row.messages))
            return prompt + cache.get(row.digest + ":a", lambda: count(counter, row.answer))

        def window_tokens(row) -> int:
            if wcounter is None:  # the official script's count: o200k tokens of the contents
                return cache.get(row.digest + ":p", lambda: sum(count(counter, m["content"]) for m in row.messages))
            return wcache.get(row.digest, lambda: wcounter.prompt_tokens(row.messages))

        window = context_window(opts)
        rows, info = iter_rows(opts.get("data") or self.default_data, opts.get("revision"))
        sel = Selection(needles, bins, opts.get("limit"), window)
        try:
            problems, facts = build_problems(
                rows, sel, lambda row, tokens: bin_label(tokens), tokens_of, window_tokens,
                "chat-rendered prompt tokens of the model's tokenizer" if wcounter
                else f"{counter.name} tokens of the message contents (official script)")
        finally:
            cache.flush()
            if wcache:
                wcache.flush()
        if window is None:
            facts["skipped_over_context_window"]["note"] = "context window unknown (set option model or context_window): nothing skipped"
        measure = f"{counter_facts['name']} prompt+answer tokens"
        return problems, {**info, **facts, "selection": sel.facts(), "token_counter": counter_facts,
                          "bin_measure": measure, "bins": {b: bin_range(b) for b in bins},
                          "aggregates": {a.name: a.definition() for a in self.aggregates(opts, measure)}}
