"""M1's reasoning and tool-call parsers for vLLM's OpenAI server (`--reasoning-parser m1bench_m1
--tool-call-parser m1bench_m1 --enable-auto-tool-choice`). Upstream's M1 tool parser left vLLM with
the model; the tool parser is m1bench's M1 output parser, the one the embedded server uses.
"""
from collections.abc import Sequence

from vllm.reasoning.basic_parsers import BaseThinkingReasoningParser
from vllm.tool_parsers.abstract_tool_parser import ToolParser

from m1bench.harness.core.m1_output import THINK_CLOSE, THINK_OPEN, M1OutputParser, parse_output
from m1bench.model.vllm_plugin.compat import (
    DeltaFunctionCall,
    DeltaMessage,
    DeltaToolCall,
    ExtractedToolCallInformation,
    FunctionCall,
    ToolCall,
)


class M1ReasoningParser(BaseThinkingReasoningParser):
    """<think>…</think> (both tags are added tokens of M1 tokenizers) by m1bench's M1 output rule
    (m1bench.harness.core.m1_output): output with no <think> at all is answer text, a lone </think>
    included (M1's chat template does not open the reasoning for the model); otherwise reasoning
    runs from <think> to the first </think>. vLLM's own split does the rest, streamed and whole
    alike (it keeps the text's whitespace, so a stream and a whole answer agree to the byte)."""

    @property
    def start_token(self) -> str:
        return THINK_OPEN

    @property
    def end_token(self) -> str:
        return THINK_CLOSE

    def extract_reasoning(self, model_output: str, request) -> tuple[str | None, str | None]:
        if THINK_OPEN not in model_output:  # as the streaming path decides it
            return None, model_output or None
        return super().extract_reasoning(model_output, request)


class M1ToolParser(ToolParser):
    """`<tool_calls>` blocks of one JSON object per line -> OpenAI tool calls."""

    supports_required_and_named = False  # M1 writes its own call syntax; no JSON-schema forcing

    def __init__(self, tokenizer, tools=None):
        super().__init__(tokenizer, tools)
        self._stream = M1OutputParser(reasoning=False)

    def extract_tool_calls(self, model_output: str, request) -> ExtractedToolCallInformation:
        parsed = parse_output(model_output, reasoning=False)
        if not parsed.tool_calls:
            return ExtractedToolCallInformation(tools_called=False, tool_calls=[], content=parsed.content or None)
        calls = [ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments))
                 for c in parsed.tool_calls]
        self.prev_tool_call_arr = [{"name": c.name, "arguments": c.arguments} for c in parsed.tool_calls]
        return ExtractedToolCallInformation(tools_called=True, tool_calls=calls, content=parsed.content or None)

    def extract_tool_calls_streaming(self, previous_text: str, current_text: str, delta_text: str,
                                     previous_token_ids: Sequence[int], current_token_ids: Sequence[int],
                                     delta_token_ids: Sequence[int], request) -> DeltaMessage | None:
        parsed = self._stream.feed(delta_text)
        if not parsed:
            return None
        deltas = []
        for call in parsed.tool_calls:  # a call is complete when its block closes: name + arguments at once
            self.current_tool_id += 1
            self.prev_tool_call_arr.append({"name": call.name, "arguments": call.arguments})
            self.streamed_args_for_tool.append(call.arguments)
            deltas.append(DeltaToolCall(index=self.current_tool_id, id=call.id, type="function",
                                        function=DeltaFunctionCall(name=call.name, arguments=call.arguments)))
        return DeltaMessage(content=parsed.content or None, tool_calls=deltas)
