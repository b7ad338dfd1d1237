"""What a suite is: options (declared, so run configs are validated before any request), data
loading, request building, scoring of one sample, and a version string that is bumped whenever
results stop being comparable."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from m1bench.harness.core.metrics import summarize
from m1bench.harness.core.types import Completion, Request, Score

if TYPE_CHECKING:
    from m1bench.harness.core.client import Client


@dataclass(frozen=True)
class Option:
    type: type | tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None


# Every suite takes these; suites add their own in `options`.
COMMON_OPTIONS: dict[str, Option] = {
    "samples": Option(int, None, "samples per problem (k); the suite's default when unset"),
    "limit": Option(int, None, "only the first N problems"),
    "data": Option(str, None, "local .jsonl/.json/.parquet file or directory, or a Hugging Face dataset id"),
    "revision": Option(str, None, "dataset revision (commit) for a hub dataset; resolved and recorded when unset"),
    "split": Option(str, None, "dataset split"),
    "max_tokens": Option(int, None, "override of [sampling].max_tokens for this suite"),
}


def sub_seed(seed: int | None, tag: str) -> int | None:
    """A seed of its own for each request of an episode (tag: its step), derived from the sample's."""
    if seed is None:
        return None
    return int(hashlib.sha256(f"{seed}:{tag}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


@dataclass
class Problem:
    id: str
    messages: list[dict[str, Any]]
    target: Any  # whatever score() needs: an answer, test cases, …
    meta: dict[str, Any] = field(default_factory=dict)


class Suite:
    name: ClassVar[str]
    version: ClassVar[str]
    default_samples: ClassVar[int]
    majority: ClassVar[bool] = False  # whether maj@k applies
    grader: ClassVar[str] = ""  # grader name + version, for the results
    thread_safe_scoring: ClassVar[bool] = False  # may score() run in worker threads?
    external: ClassVar[bool] = False  # plans and scores itself (lm-eval); the runner serves its requests
    episodic: ClassVar[bool] = False  # one sample is an episode of many requests (agentic suites): see episode()
    # a sample whose request or grading failed counts as a failure in the metrics (and apart in the
    # counts), as the suite's official harness scores it, instead of leaving the metrics
    errors_count_as_failures: ClassVar[bool] = False
    options: ClassVar[dict[str, Option]] = {}
    work_dir: Path | None = None  # set by the runner: this suite's own directory beside the records

    def load(self, opts: dict[str, Any]) -> tuple[list[Problem], dict[str, Any]]:
        """Problems (in a stable order, `limit` applied) and data facts (id, revision, content hash)."""
        raise NotImplementedError

    def score(self, problem: Problem, completion: Completion, opts: dict[str, Any]) -> Score:
        raise NotImplementedError

    async def episode(self, problem: Problem, client: "Client", request: Request, opts: dict[str, Any]) -> Completion:
        """Episodic suites: play one sample (an agent loop of many requests through `client`, each
        derived from the planned `request`: its sampling, seed and key) and return it as one
        Completion whose `trajectory` holds every step. It is recorded, resumed and scored as one sample."""
        raise NotImplementedError

    def aggregate(self, problems: list[list[Score]], k: int, seed: int) -> list[dict[str, Any]]:
        """The suite's metrics over per-problem outcomes (default: avg@k, pass@k, maj@k)."""
        return summarize(problems, k=k, majority=self.majority, seed=seed)

    def environment(self, opts: dict[str, Any]) -> dict[str, Any]:
        """Facts about how scoring ran (e.g. sandbox isolation), for the results."""
        return {}

    def all_options(self) -> dict[str, Option]:
        return {**COMMON_OPTIONS, **self.options}
