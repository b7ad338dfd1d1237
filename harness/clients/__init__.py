"""Clients: anything that turns a Request into a Completion. Two implementations: `EngineClient`
(the in-process reference engine, batching requests) and `OpenAIClient` (any OpenAI-compatible
endpoint: vLLM, m1bench's server, a hosted API)."""
from __future__ import annotations

from typing import Any

from m1bench.harness.clients.engine import EngineClient
from m1bench.harness.clients.openai_compat import OpenAIClient
from m1bench.harness.core.client import Client


def make_client(model_cfg: Any) -> Client:
    """Build the client a validated `[model]` config section asks for."""
    if model_cfg.engine == "reference":
        return EngineClient.from_checkpoint(
            model_cfg.checkpoint, dtype=model_cfg.dtype, device=model_cfg.device,
            batch_size=model_cfg.batch_size, routing_stats=model_cfg.routing_stats,
        )
    return OpenAIClient(
        endpoints=model_cfg.endpoints, model=model_cfg.name, api_key=model_cfg.api_key(),
        timeout_s=model_cfg.request_timeout_s, max_retries=model_cfg.max_retries,
        backoff_s=model_cfg.backoff_s, cooldown_s=model_cfg.cooldown_s,
    )
