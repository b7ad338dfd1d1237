"""Reasoning and tool-call handling of raw model text (M1 chat format).

M1 writes its reasoning inside `<think>…</think>` and tool calls as
`<tool_calls>\n{"name": …, "arguments": …}\n…</tool_calls>`. Answers are graded after the
reasoning is removed; an unclosed `<think>` (output cut at max_tokens) leaves no answer at all.
"""
from __future__ import annotations

import re

from m1bench.harness.core.m1_output import THINK_CLOSE, THINK_OPEN, parse_tool_block
from m1bench.harness.core.types import ToolCall

_TOOL_BLOCK = re.compile(r"<tool_calls>\s*(.*?)\s*</tool_calls>", re.S)


def split_reasoning(text: str) -> tuple[str, str]:
    """Return (reasoning, answer). A `</think>` without an opening tag counts too: chat templates
    often put `<think>` into the prompt, so the completion starts inside the reasoning."""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        head, answer = text[:close], text[close + len(THINK_CLOSE):]
        start = head.find(THINK_OPEN)
        reasoning = head[start + len(THINK_OPEN):] if start >= 0 else head
        return reasoning.strip(), answer.strip()
    start = text.find(THINK_OPEN)
    if start >= 0:  # reasoning never closed: everything after the tag is reasoning
        return text[start + len(THINK_OPEN):].strip(), text[:start].strip()
    return "", text.strip()


def split_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """Pull `<tool_calls>` blocks out of `text`; lines that are not calls are kept as text."""
    calls: list[ToolCall] = []
    leftovers: list[str] = []
    for block in _TOOL_BLOCK.findall(text):
        parsed, rest = parse_tool_block(block)
        calls += [ToolCall(name=c.name, arguments=c.arguments) for c in parsed]
        leftovers += [rest] if rest else []
    rest = _TOOL_BLOCK.sub("", text).strip()
    if leftovers:
        rest = "\n".join([rest, *leftovers]).strip()
    return rest, calls
