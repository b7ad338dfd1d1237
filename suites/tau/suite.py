"""TAU-bench suites: `tau-airline` (50 tasks) and `tau-retail` (115) on tau-bench's own
environments, and `tau-custom` on a domain file of one's own (a LocalEnv; the tests' fixture).

One sample is one episode (agent loop against the user simulator, at most `max_steps` steps);
its reward is tau-bench's. Metrics: average reward and pass^k for k = 1 … trials (samples), the
mean over tasks of C(c, k) / C(n, k).
"""
from __future__ import annotations

from typing import Any, ClassVar

from m1bench.harness.core.client import Client
from m1bench.harness.core.metrics import summarize_pass_hat
from m1bench.harness.core.types import Completion, Request, Sampling, Score
from m1bench.suites import register
from m1bench.suites.base import Option, Problem, Suite
from m1bench.suites.source import DataError
from m1bench.suites.tau.agent import agent_system_prompt, replay, run_episode
from m1bench.suites.tau.env import SUCCESS_MIN, Domain, local_domain, tau_bench_domain
from m1bench.suites.tau.user import (
    SAME_AS_AGENT,
    UserSimulator,
    check_user_endpoint,
    default_user_prompt,
    make_user_client,
)

_OPTIONS: dict[str, Option] = {
    "max_steps": Option(int, 40, "agent steps (model calls) per episode: the M1 paper's 40 "
                        "(tau_bench's run default is 30)"),
    "malformed_calls": Option(str, "fail", "a tool call whose arguments are not a JSON object: 'fail' ends the "
                              "task with reward 0 (tau_bench), 'retry' tells the model and goes on", choices=("fail", "retry")),
    "task_split": Option(str, "test", "tau-bench task split", choices=("test", "train", "dev")),
    "m1_system_prompt": Option(bool, True, "put the M1 paper's general system prompt lines ahead of the domain policy"),
    "user_model": Option(str, "gpt-4.1", "user simulator: served model name (the M1 paper used GPT-4.1)"),
    "user_endpoint": Option(str, "https://api.openai.com/v1",
                            f"user simulator: OpenAI-compatible base URL, or {SAME_AS_AGENT!r} for the model under test"),
    "user_api_key_env": Option(str, "OPENAI_API_KEY", "user simulator: environment variable holding its API key"),
    "user_temperature": Option((int, float), 1.0, "user simulator temperature (tau-bench sends none: the API default, 1.0)"),
    "user_max_tokens": Option(int, 4096, "user simulator: generation limit per turn"),
    "user_timeout_s": Option((int, float), 600, "user simulator: wall-clock limit per request attempt"),
}


class TauBench(Suite):
    version: ClassVar[str] = "2"  # 2: errored episodes count as failures in pass^k (as tau_bench)
    default_samples: ClassVar[int] = 4  # trials: pass^1 … pass^4, as tau-bench's leaderboard
    episodic: ClassVar[bool] = True
    errors_count_as_failures: ClassVar[bool] = True  # tau_bench scores an errored task 0: pass^k over planned tasks
    thread_safe_scoring: ClassVar[bool] = True  # the replay builds its own environment
    options: ClassVar[dict[str, Option]] = _OPTIONS

    def __init__(self) -> None:
        self._domain: Domain | None = None

    def domain(self, opts: dict[str, Any]) -> Domain:
        raise NotImplementedError

    def _get_domain(self, opts: dict[str, Any]) -> Domain:
        if self._domain is None:
            self._domain = self.domain(opts)
        return self._domain

    @property
    def grader(self) -> str:  # type: ignore[override]
        d = self._domain
        if d is None:
            return "tau-bench reward (replayed)"
        env = "tau_bench" if d.info["source"].startswith("tau_bench:") else "m1bench LocalEnv"
        return f"{env} {d.info['revision'] or ''} reward (replayed)".replace("  ", " ")

    def load(self, opts: dict[str, Any]) -> tuple[list[Problem], dict[str, Any]]:
        if opts["max_steps"] < 1:
            raise DataError(f"suites.{self.name}.max_steps: must be >= 1, got {opts['max_steps']}")
        check_user_endpoint(opts, f"suites.{self.name}")
        d = self._get_domain(opts)
        system = agent_system_prompt(d.wiki, opts["m1_system_prompt"])
        problems = [Problem(id=str(i), messages=[{"role": "system", "content": system}], target=None,
                            meta={"task_index": i, "user_id": getattr(t, "user_id", None)})
                    for i, t in enumerate(d.tasks)]
        if opts.get("limit") is not None:
            problems = problems[: opts["limit"]]
        return problems, {**d.info, "domain": d.name}

    async def episode(self, problem: Problem, client: Client, request: Request, opts: dict[str, Any]) -> Completion:
        d = self._get_domain(opts)
        i = problem.meta["task_index"]
        instruction = d.tasks[i].instruction
        prompt = (d.user_prompt or default_user_prompt)(instruction)
        user_client, owned = make_user_client(opts, client)
        sampling = Sampling(max_tokens=opts["user_max_tokens"], temperature=float(opts["user_temperature"]),
                            top_p=1.0, seed=request.sampling.seed)
        try:
            return await run_episode(d, i, client, UserSimulator(user_client, prompt, sampling, request.key),
                                     request, opts["max_steps"], opts["malformed_calls"])
        finally:
            if owned:
                await user_client.aclose()

    def score(self, problem: Problem, completion: Completion, opts: dict[str, Any]) -> Score:
        out = replay(self._get_domain(opts), problem.meta["task_index"], completion.trajectory or [])
        return Score(correct=out["reward"] >= SUCCESS_MIN, value=out["reward"], details=out)

    def aggregate(self, problems: list[list[Score]], k: int, seed: int) -> list[dict[str, Any]]:
        return summarize_pass_hat(problems, seed=seed)

    def environment(self, opts: dict[str, Any]) -> dict[str, Any]:
        user = {"endpoint": opts["user_endpoint"], "temperature": opts["user_temperature"],
                "max_tokens": opts["user_max_tokens"],
                "prompt": self._domain.info.get("user_prompt") if self._domain else None}
        if opts["user_endpoint"] != SAME_AS_AGENT:
            user["model"] = opts["user_model"]
        return {"user_simulator": user, "max_steps": opts["max_steps"], "m1_system_prompt": opts["m1_system_prompt"]}


@register
class TauAirline(TauBench):
    name = "tau-airline"

    def domain(self, opts: dict[str, Any]) -> Domain:
        if opts["task_split"] != "test":  # tau_bench's airline domain ships its 50 test tasks only
            raise DataError(f"suites.{self.name}.task_split: the airline domain has only the 'test' split, "
                            f"not {opts['task_split']!r}")
        return tau_bench_domain("airline", opts["task_split"], self.name, opts)


@register
class TauRetail(TauBench):
    name = "tau-retail"

    def domain(self, opts: dict[str, Any]) -> Domain:
        return tau_bench_domain("retail", opts["task_split"], self.name, opts)


@register
class TauCustom(TauBench):
    """A domain of one's own: `data` names its Python file (defining make_env())."""
    name = "tau-custom"

    def domain(self, opts: dict[str, Any]) -> Domain:
        if not opts.get("data"):
            raise DataError(f"suites.{self.name}.data: a domain file (Python, defining make_env()) is needed")
        return local_domain(opts["data"])
