"""The types that cross every boundary: `Request` (with its `Sampling`), `Completion` and `Score`.

Suites build `Request`s, clients turn them into `Completion`s, suites grade those into `Score`s,
the runner stores all three in one record per sample; nobody downstream knows which engine answered.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters of one request (paper defaults: T=1.0, top_p=0.95)."""

    max_tokens: int = 32768
    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()


def sample_seed(base: int, suite: str, problem_id: str, sample: int) -> int:
    """The seed of one sample's request: fixed by the run seed, the suite, the problem and the
    sample index, so a resumed or repeated run asks for exactly the same samples."""
    digest = hashlib.sha256(f"{base}:{suite}:{problem_id}:{sample}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


@dataclass(frozen=True)
class Request:
    """A chat request. `key` names the sample (suite/problem/sample index) so identical prompts
    drawn k times stay k distinct requests; it is part of the hash."""

    messages: tuple[dict[str, Any], ...]
    sampling: Sampling = field(default_factory=Sampling)
    tools: tuple[dict[str, Any], ...] | None = None
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["messages"] = list(self.messages)
        d["tools"] = list(self.tools) if self.tools is not None else None
        d["sampling"]["stop"] = list(self.sampling.stop)
        return d

    def hash(self, model_id: str) -> str:
        """Stable identity of this request against one model: the cache key of the records."""
        blob = json.dumps({"model": model_id, **self.to_dict()}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class ToolCall:
    name: str
    arguments: str  # JSON text, as OpenAI-compatible servers send it
    id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class Completion:
    """What came back: answer text (reasoning removed), reasoning text, tool calls, finish reason,
    token usage and timings (time to first token, per-token arrival offsets)."""

    text: str
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"  # "stop" | "length" | "tool_calls"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    token_times: list[float] = field(default_factory=list)  # seconds since request start, per token/chunk
    endpoint: str | None = None
    routing: dict[str, Any] | None = None  # expert-routing summary (m1bench.model.routing), when asked for
    trajectory: list[dict[str, Any]] | None = None  # episodic suites: every step of the episode (messages, tool calls, results)
    reasoning_tokens: int | None = None  # of completion_tokens, where the endpoint's usage says (OpenAI's completion_tokens_details)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    def to_record(self, keep_token_times: bool = False) -> dict[str, Any]:
        d = asdict(self)
        times = d.pop("token_times")
        if keep_token_times:
            d["token_times"] = [round(t, 5) for t in times]
        d["tpot_s"] = tpot(times)
        if d["tpot_s"] is None and self.ttft_s is not None and self.completion_tokens > 1:
            d["tpot_s"] = (self.total_s - self.ttft_s) / (self.completion_tokens - 1)  # engines without per-token times
        return d

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> "Completion":
        d = dict(d)
        d.pop("tpot_s", None)
        d["tool_calls"] = [ToolCall(**t) for t in d.get("tool_calls", [])]
        return cls(**d)


@dataclass
class Score:
    """One graded sample. `value` is partial credit in [0, 1] (MRCR's similarity); None means the
    0/1 of `correct`. `answer` is the normalised final answer majority voting compares (None: no
    vote). The record of a sample stores all of it, so what was graded is what gets averaged."""

    correct: bool
    answer: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    value: float | None = None

    @property
    def credit(self) -> float:
        return float(self.correct) if self.value is None else float(self.value)

    def to_record(self) -> dict[str, Any]:
        return {"correct": self.correct, "answer": self.answer, "details": self.details, "value": self.value}

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> "Score":
        return cls(bool(d["correct"]), d.get("answer"), d.get("details") or {}, d.get("value"))


def tpot(token_times: list[float]) -> float | None:
    """Mean time per output token after the first one."""
    if len(token_times) < 2:
        return None
    return (token_times[-1] - token_times[0]) / (len(token_times) - 1)
