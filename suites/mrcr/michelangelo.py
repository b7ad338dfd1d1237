"""MRCR, Michelangelo-style: multi-round co-reference over long synthetic conversations that
m1bench generates itself (mrcr_generator), seeded, at any target length in the tokens of the
model's tokenizer (or o200k_base). Same fields and grader as OpenAI-MRCR; results per target
length ("bin" = the length, e.g. "128K") and needle count, plus "128K" and "1M" (all selected
needle counts at that length).

Samples are generated once per parameter set into $M1BENCH_HOME/mrcr/generated/ (streamed to disk,
deterministic) and read back like any OpenAI-MRCR file; option `data` reads a file written by
`python -m m1bench.suites.mrcr.generator` instead.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from m1bench.suites import register
from m1bench.suites.base import Option, Problem
from m1bench.suites.mrcr.data import Selection, build_problems, iter_rows
from m1bench.suites.mrcr.generator import (
    GENERATOR_VERSION,
    MEASURES,
    MIN_TARGET,
    Measure,
    generate_file,
    specs_for,
)
from m1bench.suites.mrcr.grading import Aggregate, length_label
from m1bench.suites.mrcr.openai_mrcr import MRCRSuiteBase, _int_list, context_window, window_counter
from m1bench.suites.mrcr.tokens import O200K, ModelCounter, load_model_counter, load_o200k
from m1bench.suites.source import DataError


@register
class MRCR(MRCRSuiteBase):
    name = "mrcr"
    version = "1"
    options: ClassVar[dict[str, Option]] = {
        **MRCRSuiteBase.common_options,
        "lengths": Option(list, [8192, 16384, 32768, 65536, 131072], "target lengths in tokens (one bin each)"),
        "per_cell": Option(int, 4, "samples per (length, needle count)"),
        "seed": Option(int, 0, "generator seed (the data; sampling seeds come from [run].seed)"),
        "tokenizer": Option(str, "auto", "tokens the lengths are measured in: the model's, o200k_base, or auto "
                                         "(the model's when option model is set)", choices=("auto", O200K, "model")),
        "measure": Option(str, "auto", "content (message contents + answer, as OpenAI-MRCR bins), chat (the prompt "
                                       "the model sees), or auto (chat with the model's tokenizer)",
                          choices=("auto", *MEASURES)),
        "cache_dir": Option(str, None, "where generated samples go (default $M1BENCH_HOME/mrcr/generated)"),
    }

    def _lengths(self, opts: dict[str, Any]) -> tuple[int, ...]:
        lengths = _int_list(opts, "lengths")
        if min(lengths) < MIN_TARGET:
            raise DataError(f"option lengths: every length must be >= {MIN_TARGET}, got {min(lengths)}")
        return lengths

    def bin_order(self, opts: dict[str, Any]) -> tuple[str, ...]:
        return tuple(length_label(n) for n in self._lengths(opts))

    def aggregates(self, opts: dict[str, Any], measure: str = "generated length") -> list[Aggregate]:
        needles = _int_list(opts, "aggregate_needles", (2, 4, 8))
        return [Aggregate(name, needles, (name,), "pointwise", measure) for name in ("128K", "1M")]

    def _counter(self, opts: dict[str, Any]):
        choice, model = opts["tokenizer"], opts.get("model")
        if choice == "model" or (choice == "auto" and model):
            if not model:
                raise DataError("option tokenizer 'model' needs option model (checkpoint directory or 'tiny')")
            return load_model_counter(model)
        return load_o200k()

    def generated_file(self, opts: dict[str, Any], measure: Measure) -> Path:
        params = {"generator": GENERATOR_VERSION, "lengths": self._lengths(opts), "needles": _int_list(opts, "needles", (2, 4, 8)),
                  "per_cell": opts["per_cell"], "seed": opts["seed"], "measure": measure.mode,
                  "tokenizer": measure.counter.name if not isinstance(measure.counter, ModelCounter)
                  else hashlib.sha256(measure.counter.tokenizer.tokenizer.to_str().encode()).hexdigest()}
        key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        home = Path(opts.get("cache_dir") or Path(os.environ.get("M1BENCH_HOME", "~/.cache/m1bench")).expanduser()
                    / "mrcr" / "generated")
        return home / f"mrcr-{key}.jsonl"

    def load(self, opts: dict[str, Any]) -> tuple[list[Problem], dict[str, Any]]:
        needles = _int_list(opts, "needles", (2, 4, 8))
        lengths = self._lengths(opts)
        if opts["per_cell"] < 1:
            raise DataError(f"option per_cell: must be >= 1, got {opts['per_cell']}")
        counter = self._counter(opts)
        mode = opts["measure"] if opts["measure"] != "auto" else ("chat" if isinstance(counter, ModelCounter) else "content")
        measure = Measure(counter, mode)
        data = opts.get("data")
        generated = None
        if not data:
            path = self.generated_file(opts, measure)
            if not path.exists():
                generate_file(path, specs_for(list(lengths), list(needles), opts["per_cell"], opts["seed"]), measure)
            data, generated = str(path), True
        wcounter = window_counter(opts.get("model"), counter)
        same_measure = mode == "chat" and wcounter is counter

        def tokens_of(row) -> int:
            return row.extra["n_tokens"] if "n_tokens" in row.extra else sum(len(counter.encode(m["content"])) for m in row.messages)

        def bin_of(row, tokens: int) -> str:
            return length_label(row.extra.get("target_tokens", tokens))

        def window_tokens(row) -> int:
            if same_measure:  # the generator already counted the rendered prompt exactly
                return row.extra["n_tokens"]
            if wcounter is not None:
                return wcounter.prompt_tokens(row.messages)
            return sum(len(counter.encode(m["content"])) for m in row.messages)

        window = context_window(opts)
        rows, info = iter_rows(data)
        sel = Selection(needles, tuple(length_label(n) for n in lengths), opts.get("limit"), window)
        problems, facts = build_problems(rows, sel, bin_of, tokens_of, window_tokens,
                                         "chat-rendered prompt tokens of the model's tokenizer" if wcounter
                                         else f"{counter.name} tokens of the message contents")
        bin_measure = f"generated length in {counter.name} tokens ({'chat-rendered prompt' if mode == 'chat' else 'contents + answer'})"
        return problems, {**info, **facts, "generated": generated, "selection": sel.facts(),
                          "token_counter": {"name": counter.name, "measure": mode}, "bin_measure": bin_measure,
                          "aggregates": {a.name: a.definition() for a in self.aggregates(opts, bin_measure)}}
