"""The evaluation core's OpenAI client against a local fault-injecting server, many requests at once:
connections dropped before and during the answer, 429s, 500s, answers slower than the client's
timeout, malformed JSON in the stream and in an error body. Every request must end answered (with
its own answer) or as a recorded error naming its cause; none may hang; none is answered twice."""
import asyncio
import time
from collections import Counter

import pytest

from m1bench.harness.bench.stub_server import StubServer
from m1bench.harness.clients.openai_compat import OpenAIClient
from m1bench.harness.core.client import RequestError
from m1bench.harness.core.types import Request, Sampling

CLIENT_TIMEOUT_S = 1.0

# Per request key: the faults its attempts meet, in order; attempts after the list are answered.
TRANSIENT = {"drop": ["drop"], "drop-mid": ["drop_mid"], "429": ["429", "429"], "500": ["500"],
             "slow": ["slow"], "malformed-chunk": ["malformed_chunk"], "malformed-error": ["malformed_error"],
             "mixed": ["429", "drop_mid", "500"]}
PERSISTENT = {"always-500": ("500", "server"), "always-429": ("429", "rate_limit"), "always-drop": ("drop", "connection"),
              "always-slow": ("slow", "timeout"), "always-malformed": ("malformed_chunk", "malformed")}


# The stub server's fault for each name above.
FAULTS = {"drop": ("reset", 0), "drop_mid": ("reset", 1), "429": ("status", 429, {"Retry-After": "0"}),
          "500": ("status", 500), "slow": ("sleep", CLIENT_TIMEOUT_S * 2.5), "malformed_chunk": "malformed",
          "malformed_error": ("status", 503, {}, b"{not json")}


class FaultServer(StubServer):
    """Answers "echo <key>"; each attempt of a request meets the next fault of its key's plan."""

    def __init__(self):
        self.attempts: Counter = Counter()
        super().__init__(lambda body: {"content": "echo " + body["messages"][-1]["content"]}, self.fault_for)

    def fault_for(self, body):
        key = body["messages"][-1]["content"]
        n, self.attempts[key] = self.attempts[key], self.attempts[key] + 1
        name = key.split("#")[0]
        if name in PERSISTENT:
            return FAULTS[PERSISTENT[name][0]]
        plan = TRANSIENT.get(name, [])
        return FAULTS[plan[n]] if n < len(plan) else None

    @property
    def answers(self) -> Counter:
        """Complete answers sent, per key."""
        return Counter(body["messages"][-1]["content"] for body in self.answered)


def run_mixed(names: list[str], copies: int = 3):
    keys = [f"{name}#{i}" for i in range(copies) for name in names]
    with FaultServer() as server:
        client = OpenAIClient([server.url], model="stub", timeout_s=CLIENT_TIMEOUT_S, max_retries=3,
                              backoff_s=0.01, max_backoff_s=0.05, cooldown_s=0.0)

        async def one(key):
            request = Request(messages=({"role": "user", "content": key},), sampling=Sampling(max_tokens=8), key=key)
            try:
                return await asyncio.wait_for(client.complete(request), timeout=60)  # a hang fails here
            except RequestError as e:
                return e

        async def main():
            try:
                return await asyncio.gather(*(one(k) for k in keys))
            finally:
                await client.aclose()

        t0 = time.monotonic()
        outcomes = dict(zip(keys, asyncio.run(main())))
        assert time.monotonic() - t0 < 45
    for key, out in outcomes.items():
        name = key.split("#")[0]
        if name in PERSISTENT:
            assert isinstance(out, RequestError), f"{key}: {out!r}"
            kind = PERSISTENT[name][1]
            assert out.kind == kind and out.message, f"{key}: {out.kind} {out.message}"
            assert out.attempts == 4 and 1 <= server.attempts[key] <= 4  # an attempt may die on a stale connection
        else:
            assert not isinstance(out, RequestError), f"{key}: {out}"
            assert out.text == f"echo {key}", f"{key}: got another request's answer: {out.text!r}"
            assert server.answers[key] == 1  # answered once: no retry after a complete answer


def test_every_request_ends_answered_or_as_a_named_error_under_mixed_faults():
    run_mixed([*TRANSIENT, *PERSISTENT, "ok"])
