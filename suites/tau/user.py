"""The TAU-bench user simulator: a second model (any OpenAI-compatible endpoint; the M1 paper used
GPT-4.1) that plays the task's user instruction and ends the conversation with ###STOP###.

As in tau-bench's LLM user: the simulator's chat starts with its system prompt and the agent's
greeting "Hi! How can I help you today?"; its replies are its assistant turns and the agent's
messages are its user turns. The system prompt is tau-bench's own when the package provides it,
else m1bench's wording of the same rules.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from m1bench.harness.core.client import Client, RequestError
from m1bench.harness.core.types import Request, Sampling
from m1bench.suites.base import sub_seed
from m1bench.suites.source import DataError
from m1bench.suites.tau.env import STOP_TOKEN

GREETING = "Hi! How can I help you today?"
SAME_AS_AGENT = "model"  # user_endpoint value: the model under test plays the user too


def default_user_prompt(instruction: str) -> str:
    return (
        "You are a customer talking to a customer-service agent.\n\n"
        f"Instruction: {instruction}\n\n"
        "Rules:\n"
        "- Write one line at a time: the customer's next message.\n"
        "- Give the information in the instruction only as the current step needs it, not all at once.\n"
        "- Never make up information the instruction does not give (an id, a number): say you do not have it or do not remember.\n"
        f"- When the goal of the instruction is reached, reply with {STOP_TOKEN} alone, and nothing else, to end the conversation.\n"
        "- Do not repeat the instruction word for word; say it in your own words.\n"
        "- Keep the conversation natural and stay in the persona the instruction describes."
    )


def check_user_endpoint(opts: dict[str, Any], where: str) -> None:
    """Before any request: the endpoint is a URL (or the model under test), and OpenAI's own API has its key."""
    url = opts["user_endpoint"]
    if url == SAME_AS_AGENT:
        return
    if not url.startswith(("http://", "https://")):
        raise DataError(f"{where}.user_endpoint: expected an http(s) base URL or {SAME_AS_AGENT!r}, got {url!r}")
    if "api.openai.com" in url and not os.environ.get(opts["user_api_key_env"]):
        raise DataError(f"{where}.user_api_key_env: the user simulator at {url} needs an API key in "
                        f"${opts['user_api_key_env']}, which is not set")


def make_user_client(opts: dict[str, Any], agent: Client) -> tuple[Client, bool]:
    """The user simulator's client, and whether the episode owns it (and must close it)."""
    if opts["user_endpoint"] == SAME_AS_AGENT:
        return agent, False
    from m1bench.harness.clients.openai_compat import OpenAIClient

    return OpenAIClient(endpoints=[opts["user_endpoint"]], model=opts["user_model"],
                        api_key=os.environ.get(opts["user_api_key_env"]), timeout_s=opts["user_timeout_s"]), True


class UserSimulator:
    """One simulated user for one episode."""

    def __init__(self, client: Client, system_prompt: str, sampling: Sampling, key: str):
        self.client, self.sampling, self.key = client, sampling, key
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt},
                                               {"role": "user", "content": GREETING}]
        self.turns = 0
        self.prompt_tokens = self.completion_tokens = 0

    async def start(self) -> str:
        return await self._next()

    async def reply(self, agent_message: str) -> str:
        self.messages.append({"role": "user", "content": agent_message})
        return await self._next()

    async def _next(self) -> str:
        self.turns += 1
        tag = f"user{self.turns}"
        req = Request(messages=tuple(self.messages), key=f"{self.key}/{tag}",
                      sampling=replace(self.sampling, seed=sub_seed(self.sampling.seed, tag)))
        try:
            c = await self.client.complete(req)
        except RequestError as e:
            raise RequestError(e.kind, f"user simulator: {e.message}", e.attempts) from None
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        self.messages.append({"role": "assistant", "content": c.text})
        return c.text
