"""The endpoint check before a run's first request: an endpoint answers, serves the model the
config names, and has room for the longest generation the plan asks of it. A run that cannot
succeed stops here, naming the config key to change, instead of sending requests that all come
back HTTP 400 (a server refuses max_tokens at or over its max_model_len, the prompt included).

Endpoints without a model listing (some hosted APIs) are not checked; endpoints that do not answer
while others do are named in a warning (their circuit breakers keep requests off them).
"""
from __future__ import annotations

from typing import Any

from m1bench.harness.eval.config import RunConfig
from m1bench.harness.eval.plan import Planned


class EndpointError(Exception):
    """No endpoint of the run can serve it."""


def check_endpoints(listings: list[dict[str, Any]], cfg: RunConfig, plans: dict[str, list[Planned]]) -> list[str]:
    """Raise EndpointError when the run cannot succeed; return warnings about endpoints left out."""
    down = [x for x in listings if "error" in x]
    if listings and len(down) == len(listings):
        raise EndpointError("no endpoint answers (model.endpoints / --endpoint): "
                            + "; ".join(x["error"] for x in down))
    name = cfg.model.name
    for x in listings:
        models = x.get("models")
        if "error" in x or models is None:
            continue
        if name not in models:
            raise EndpointError(f"model.name {name!r} (--model): {x['url']} serves {', '.join(map(repr, models))}")
        limit = models[name]
        if not limit:
            continue
        for suite, items in plans.items():
            longest = max((it.request.sampling.max_tokens for it in items), default=0)
            if longest >= limit:
                key = (f"suites.{suite}.max_tokens" if cfg.suites[suite].get("max_tokens")
                       else "sampling.max_tokens (--max-tokens)")
                raise EndpointError(f"{key} = {longest} cannot fit: {x['url']} serves {name!r} with "
                                    f"max_model_len {limit} (prompt and generation together); lower {key.split()[0]} "
                                    f"below {limit}, or serve the model with a longer max_model_len")
    return [f"{x['url']} does not answer ({x['error']}); the run goes on with the other endpoints" for x in down]
