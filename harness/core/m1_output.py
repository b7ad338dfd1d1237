"""The M1 output format, parsed in one place: model text -> reasoning, answer text, tool calls.
The clients, the graders, the embedded server and the vLLM plugin's parsers all use this parser,
streaming or not, so they always agree.

M1 writes its reasoning inside `<think>…</think>` and tool calls as
`<tool_calls>\n{"name": …, "arguments": …}\n…</tool_calls>`. The rules:
- reasoning is the text between `<think>` and the first `</think>` after it;
- a `</think>` with no `<think>` before it is ordinary answer text: M1's chat template does not
  open the reasoning in the prompt (the model writes `<think>` itself), so nothing before it was
  reasoning;
- an unclosed `<think>` (output cut at the token limit) is reasoning to the end: the answer is
  only what came before it, so a cut-off completion has no answer to grade;
- a tool call is one JSON object per line inside `<tool_calls>`; a line that is not a call, and
  an unclosed block, come back as answer text (nothing is lost).

The parser takes arbitrary text deltas: a tag split across deltas is held back until it is
complete, and a tool call is emitted once its block closes.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from m1bench.harness.core.types import ToolCall

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TOOLS_OPEN, TOOLS_CLOSE = "<tool_calls>", "</tool_calls>"


@dataclass
class ParsedDelta:
    reasoning: str = ""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.reasoning or self.content or self.tool_calls)

    def extend(self, other: "ParsedDelta") -> None:
        self.reasoning += other.reasoning
        self.content += other.content
        self.tool_calls += other.tool_calls


def parse_tool_block(block: str) -> tuple[list[ToolCall], str]:
    """The inside of one <tool_calls> block -> (calls, lines that are not calls)."""
    calls, rest = [], []
    for line in block.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
            name = obj["name"]
            if not isinstance(name, str):
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError):
            rest.append(line)
            continue
        args = obj.get("arguments", {})
        calls.append(ToolCall(name, args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
                              id=f"call_{uuid.uuid4().hex[:24]}"))
    return calls, "\n".join(rest)


class M1OutputParser:
    """Feed text deltas in order; each `feed` returns what became certain; `finish` flushes the rest.

    reasoning=False parses tool calls only (vLLM's tool parser sees text its reasoning parser
    already split); tools=False leaves <tool_calls> blocks in the answer text."""

    def __init__(self, reasoning: bool = True, tools: bool = True):
        self.reasoning_enabled, self.tools_enabled = reasoning, tools
        self.mode = "content"  # content | reasoning | tools
        self.pending = ""  # text not yet classified (a possible tag prefix, or an open tool block)
        self.fresh = True  # at the start of a section: leading whitespace is dropped
        self.has_content = False
        self.num_tool_calls = 0

    def _tags(self) -> tuple[str, ...]:
        if self.mode == "reasoning":
            return (THINK_CLOSE,)
        if self.mode == "tools":
            return (TOOLS_CLOSE,)
        return (THINK_OPEN,) * self.reasoning_enabled + (TOOLS_OPEN,) * self.tools_enabled

    def feed(self, text: str) -> ParsedDelta:
        out = ParsedDelta()
        self.pending += text
        while True:
            hits = [(self.pending.find(t), t) for t in self._tags() if t in self.pending]
            if not hits:
                break
            pos, tag = min(hits)
            before, self.pending = self.pending[:pos], self.pending[pos + len(tag):]
            if tag == TOOLS_CLOSE:
                calls, rest = parse_tool_block(before)
                self.num_tool_calls += len(calls)
                out.tool_calls += calls
                self.mode = "content"
                self._emit(out, rest)
            else:
                self._emit(out, before)
                self.mode = "reasoning" if tag == THINK_OPEN else "tools" if tag == TOOLS_OPEN else "content"
            self.fresh = True
        if self.mode != "tools":
            # Keep back a tail that could still become a tag, and trailing whitespace (dropped if a tag
            # or the end follows: sections come out stripped, streamed or not).
            keep = max((k for t in self._tags() for k in range(1, len(t)) if self.pending.endswith(t[:k])), default=0)
            head = self.pending[:len(self.pending) - keep]
            cut = len(head.rstrip())
            self._emit(out, head[:cut], strip_end=False)
            self.pending = self.pending[cut:]
        return out

    def finish(self) -> ParsedDelta:
        out = ParsedDelta()
        if self.mode == "tools":  # unclosed block: give the text back as it was written
            self.mode = "content"
            self._emit(out, TOOLS_OPEN + self.pending)
        else:
            self._emit(out, self.pending)
        self.pending = ""
        return out

    def _emit(self, out: ParsedDelta, text: str, strip_end: bool = True) -> None:
        if self.fresh:
            text = text.lstrip()
        if strip_end:
            text = text.rstrip()
        if not text:
            return
        if self.mode == "reasoning":
            out.reasoning += text
        else:
            if self.fresh and self.has_content:  # answer text on both sides of a tool block
                text = "\n" + text
            out.content += text
            self.has_content = True
        self.fresh = False


def parse_output(text: str, reasoning: bool = True, tools: bool = True) -> ParsedDelta:
    """A whole completion at once (the same rules as streaming)."""
    parser = M1OutputParser(reasoning, tools)
    out = parser.feed(text)
    out.extend(parser.finish())
    return out


def split_reasoning(text: str) -> tuple[str, str]:
    """(reasoning, answer) of a whole completion, tool-call blocks left in the answer."""
    out = parse_output(text, tools=False)
    return out.reasoning, out.content
