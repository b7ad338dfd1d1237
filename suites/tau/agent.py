"""The TAU-bench agent loop (tau-bench's tool-calling agent, with M1's system prompt lines) and the
replay that scores a recorded episode.

One step is one request to the model under test, with the domain's tools as OpenAI tools:
- tool calls: the first one is executed on the environment (tau-bench executes one action per
  step; further calls in the same turn are dropped from the conversation and counted), and its
  observation goes back as a `tool` message. A call whose arguments are not a JSON object (or
  that has no name) ends the task with reward 0, as tau_bench's agent fails on it (`malformed_calls
  = "retry"`: it is not executed, the model gets a tool message saying so, and goes on).
- no tool call, or a call of tau-bench's `respond` action: the text (its `content` argument) is
  sent to the user simulator, whose answer comes back as the next user message.
The episode ends when the user simulator says ###STOP###, when a terminating tool (transfer to a
human) runs, or after `max_steps` steps (reward 0, marked "max_steps"). The environment then
computes tau-bench's reward.

Every message, tool call and tool result is kept in the trajectory (OpenAI message shapes plus
step metadata). Scoring replays the trajectory's actions on a fresh environment and recomputes
the reward, so a record can be regraded; the replay must reproduce every recorded observation
and the reward the live episode got.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from m1bench.harness.core.client import Client
from m1bench.harness.core.types import Completion, Request, ToolCall
from m1bench.suites.base import sub_seed
from m1bench.suites.tau.env import RESPOND, Domain, UserRelay, reward_info
from m1bench.suites.tau.user import UserSimulator

# The general system prompt the M1 paper used for TAU-bench (MiniMax-M1 README), ahead of the domain policy.
M1_SYSTEM_PROMPT = (
    "- In each round, you need to carefully examine the tools provided to you to determine if any can be used.\n"
    "- You must adhere to all of the policies. Pay attention to the details in the terms. "
    "Solutions for most situations can be found within these policies."
)


class ReplayError(RuntimeError):
    pass


def agent_system_prompt(wiki: str, m1_prompt: bool) -> str:
    return f"{M1_SYSTEM_PROMPT}\n\n{wiki}" if m1_prompt else wiki


def parse_arguments(call: ToolCall) -> tuple[dict[str, Any] | None, str | None]:
    """The call's arguments as a dict, or why they cannot be used."""
    if not call.name:
        return None, "the tool call has no function name"
    text = (call.arguments or "").strip()
    if not text:
        return {}, None
    try:
        args = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"the arguments are not valid JSON ({e.msg} at character {e.pos})"
    if not isinstance(args, dict):
        return None, f"the arguments must be a JSON object, got {type(args).__name__}"
    return args, None


def malformed_message(name: str, problem: str) -> str:
    return (f"Error: malformed call to tool {name!r}: {problem}. Nothing was executed; "
            "call the tool again with a JSON object of arguments.")


async def run_episode(domain: Domain, task_index: int, client: Client, user: UserSimulator,
                      request: Request, max_steps: int, malformed_calls: str = "fail") -> Completion:
    env = domain.make_env()
    relay = UserRelay()
    env.user = relay
    t0 = time.perf_counter()
    relay.put(await user.start())
    first = env.reset(task_index=task_index).observation
    messages: list[dict[str, Any]] = [*request.messages, {"role": "user", "content": first}]
    trajectory: list[dict[str, Any]] = [{"role": "user", "content": first}]
    prompt_tokens = completion_tokens = 0
    ttft = None
    last_text, end, reward, details, steps = "", "max_steps", 0.0, {}, 0
    tools = tuple(domain.tools_info)
    for step in range(1, max_steps + 1):
        steps = step
        tag = f"step{step}"
        c = await client.complete(replace(request, messages=tuple(messages), tools=tools, key=f"{request.key}/{tag}",
                                          sampling=replace(request.sampling, seed=sub_seed(request.sampling.seed, tag))))
        prompt_tokens += c.prompt_tokens
        completion_tokens += c.completion_tokens
        ttft = c.ttft_s if ttft is None else ttft
        last_text = c.text
        meta = {"step": step, "reasoning": c.reasoning, "finish_reason": c.finish_reason,
                "tokens": [c.prompt_tokens, c.completion_tokens]}
        if c.tool_calls:
            call = c.tool_calls[0]
            call_id = call.id or f"call_{step}"
            assistant = {"role": "assistant", "content": c.text, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}]}
            args, problem = parse_arguments(call)
            if problem is None and call.name == RESPOND:  # the respond action as a call: a message to the user
                text = str(args.get("content", ""))
                relay.put(await user.reply(text))
                resp = env.step(domain.make_action(RESPOND, {"content": text}))
                observation, done = resp.observation, resp.done
                messages += [assistant, {"role": "user", "content": observation}]
                trajectory += [{**assistant, **meta, "dropped_tool_calls": len(c.tool_calls) - 1},
                               {"role": "user", "content": observation, "step": step}]
                if done:
                    end = "user_stop"
                    reward, details = float(resp.reward), reward_info(resp.info)
                    break
                continue
            if problem is None:
                resp = env.step(domain.make_action(call.name, args))
                observation, done = resp.observation, resp.done
            else:
                resp, observation, done = None, malformed_message(call.name, problem), False
            tool_msg = {"role": "tool", "tool_call_id": call_id, "name": call.name, "content": observation}
            messages += [assistant, tool_msg]
            trajectory += [{**assistant, **meta, "dropped_tool_calls": len(c.tool_calls) - 1},
                           {**tool_msg, "step": step, **({"malformed": problem} if problem else {})}]
            if problem is not None and malformed_calls == "fail":
                end = "malformed_call"  # tau_bench: the task fails, reward 0
                break
            if done:
                end = "terminate_tool"
        else:
            assistant = {"role": "assistant", "content": c.text}
            relay.put(await user.reply(c.text))
            resp = env.step(domain.make_action(RESPOND, {"content": c.text}))
            observation, done = resp.observation, resp.done
            messages += [assistant, {"role": "user", "content": observation}]
            trajectory += [{**assistant, **meta}, {"role": "user", "content": observation, "step": step}]
            if done:
                end = "user_stop"
        if done:
            reward, details = float(resp.reward), reward_info(resp.info)
            break
    trajectory.append({"event": "end", "reason": end, "steps": steps, "reward": reward, "reward_info": details,
                       "user_simulator": {"turns": user.turns, "prompt_tokens": user.prompt_tokens,
                                          "completion_tokens": user.completion_tokens}})
    return Completion(text=last_text, finish_reason="max_steps" if end == "max_steps" else "stop",
                      prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, ttft_s=ttft,
                      total_s=time.perf_counter() - t0, trajectory=trajectory)


def replay(domain: Domain, task_index: int, trajectory: list[dict[str, Any]]) -> dict[str, Any]:
    """Re-run a recorded episode's actions on a fresh environment: its reward and how it ended."""
    if not trajectory or trajectory[0].get("role") != "user" or trajectory[-1].get("event") != "end":
        raise ReplayError("the trajectory does not start with the user's first message and end with an end event")
    env = domain.make_env()
    relay = UserRelay()
    env.user = relay
    relay.put(trajectory[0]["content"])
    env.reset(task_index=task_index)
    done, resp = False, None
    events = trajectory[1:-1]
    for i, ev in enumerate(events):
        if ev.get("role") != "assistant":
            continue
        after = events[i + 1] if i + 1 < len(events) else None
        if after is None:
            raise ReplayError(f"step {ev['step']}: the agent's turn has no recorded answer after it")
        if ev.get("tool_calls"):
            if "malformed" in after:
                continue
            fn = ev["tool_calls"][0]["function"]
            args, _ = parse_arguments(ToolCall(name=fn["name"], arguments=fn["arguments"]))
            if fn["name"] == RESPOND:
                relay.put(after["content"])
                args = {"content": str(args.get("content", ""))}
            resp = env.step(domain.make_action(fn["name"], args))
        else:
            relay.put(after["content"])
            resp = env.step(domain.make_action(RESPOND, {"content": ev["content"]}))
        if resp.observation != after["content"]:
            raise ReplayError(f"step {ev['step']}: the replayed observation differs from the recorded one "
                              f"({resp.observation[:120]!r} vs {after['content'][:120]!r})")
        if resp.done:
            done = True
            break
    end = trajectory[-1]
    reward = float(resp.reward) if done else 0.0
    if done != (end["reason"] not in ("max_steps", "malformed_call")):
        raise ReplayError(f"the replay {'ended' if done else 'did not end'} but the episode ended by {end['reason']}")
    if abs(reward - float(end["reward"])) > 1e-9:
        raise ReplayError(f"the replayed reward {reward} differs from the episode's {end['reward']}")
    return {"reward": reward, "end": end["reason"], "steps": end["steps"],
            "reward_info": reward_info(resp.info) if done else {}}
