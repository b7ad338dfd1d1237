"""Where the vLLM releases the plugin supports differ, in one place: every other plugin module
imports only names that all of them share. Add a release here, with what was checked on it, in
`SUPPORTED_VLLM` (model/vllm_plugin/__init__.py)."""
from m1bench.model.vllm_plugin import check_vllm_version

_RELEASE = tuple(int(x) for x in check_vllm_version().split("+")[0].split(".")[:2])

if _RELEASE >= (0, 27):  # the MoE layer became a factory; the OpenAI protocol types moved
    from vllm.entrypoints.generate.base.protocol import (
        DeltaFunctionCall, DeltaMessage, DeltaToolCall, ExtractedToolCallInformation, FunctionCall, ToolCall)
    from vllm.model_executor.layers.fused_moe import FusedMoEFactory as fused_moe
else:
    from vllm.entrypoints.openai.engine.protocol import (
        DeltaFunctionCall, DeltaMessage, DeltaToolCall, ExtractedToolCallInformation, FunctionCall, ToolCall)
    from vllm.model_executor.layers.fused_moe import FusedMoE as fused_moe

__all__ = ["DeltaFunctionCall", "DeltaMessage", "DeltaToolCall", "ExtractedToolCallInformation", "FunctionCall",
           "ToolCall", "fused_moe"]
