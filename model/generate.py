"""The oracle generation loop: a fixed batch through the reference model, as plainly as it can be
written (left padding, greedy or temperature/top-k/top-p sampling with per-request seeds, EOS and
stop strings, max new tokens; finished sequences leave the batch). The engine that serves and
evaluates (harness/engine, continuous batching) is checked against it token for token; `m1bench
generate`, the RL rollouts and the profilers call it directly."""
import time
from dataclasses import dataclass, field

import torch

from m1bench.model.m1 import M1ForCausalLM
from m1bench.model.routing import RoutingRecorder
from m1bench.model.tokenizer import ChatTokenizer


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 256
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means no top-k filter
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self):
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")


@dataclass
class Generation:
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = "length"  # "stop" (EOS or a stop string) or "length"
    prompt_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    routing: dict | None = None  # expert-routing summary, when recorded


def sample_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """logits [V] fp32 -> one token id."""
    if params.temperature == 0:
        return int(logits.argmax())
    logits = logits / params.temperature
    if params.top_k:
        kth = logits.topk(min(params.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if params.top_p < 1:
        sorted_probs, order = probs.sort(descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = sorted_probs.cumsum(0) - sorted_probs >= params.top_p
        probs = probs.scatter(0, order, sorted_probs.masked_fill(drop, 0.0))
    return int(torch.multinomial(probs, 1, generator=generator))


def _stop_cut(text: str, stops) -> int | None:
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None


def _generators(params: list[SamplingParams]) -> list[torch.Generator]:
    out = []
    for p in params:
        g = torch.Generator(device="cpu")
        g.manual_seed(p.seed) if p.seed is not None else g.seed()
        out.append(g)
    return out


@torch.inference_mode()
def generate(model: M1ForCausalLM, tokenizer: ChatTokenizer, prompts: list[list[int]],
             params: SamplingParams | list[SamplingParams], routing: RoutingRecorder | None = None) -> list[Generation]:
    """Left-pad the prompts into one batch, prefill, then sample. With `routing`, every request's
    expert choices are counted (pads excluded) and summarised in `Generation.routing`."""
    params = params if isinstance(params, list) else [params] * len(prompts)
    if len(params) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(params)} sampling params")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    device = model.device
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    cache = model.new_cache(len(prompts), capacity=width + max(p.max_new_tokens for p in params))
    if routing is not None:
        routing.begin_step(list(range(len(prompts))), mask.bool())
    start = time.perf_counter()
    with model.recording_routing(routing):
        logits = model(ids.to(device), cache, attention_mask=mask.to(device), logits_to_keep=1)[:, -1].cpu()
    results = [Generation(prompt_tokens=len(p), prefill_s=time.perf_counter() - start) for p in prompts]
    return _decode(model, tokenizer, cache, logits, params, results, routing)


@torch.inference_mode()
def continue_generation(model: M1ForCausalLM, tokenizer: ChatTokenizer, cache, last_logits: torch.Tensor,
                        params: SamplingParams, prompt_tokens: int) -> Generation:
    """Sample one sequence whose prompt is already in `cache` (e.g. a resumed long prefill);
    `last_logits` [V] are the logits after its last prompt token."""
    return _decode(model, tokenizer, cache, last_logits[None].cpu(), [params],
                   [Generation(prompt_tokens=prompt_tokens)], None)[0]


def _decode(model, tokenizer, cache, logits, params, results, routing) -> list[Generation]:
    device = model.device
    generators = _generators(params)
    stop_at: dict[int, int] = {}  # result index -> character offset of the first stop string
    active = [i for i, p in enumerate(params) if p.max_new_tokens > 0]
    if active and len(active) < len(results):
        cache.select(torch.tensor(active, dtype=torch.long, device=device))
        logits = logits[active]
    start = time.perf_counter()
    while active:
        next_tokens, keep = [], []
        for row, i in enumerate(active):
            r, p = results[i], params[i]
            tok = sample_token(logits[row], p, generators[i])
            if tok == tokenizer.eos_token_id:
                r.finish_reason = "stop"
                continue
            r.token_ids.append(tok)
            if p.stop:
                cut = _stop_cut(tokenizer.decode(r.token_ids), p.stop)
                if cut is not None:
                    stop_at[i], r.finish_reason = cut, "stop"
                    continue
            if len(r.token_ids) >= p.max_new_tokens:
                continue
            next_tokens.append(tok)
            keep.append(row)
        if len(keep) < len(active):
            active = [active[row] for row in keep]
            if not active:
                break
            cache.select(torch.tensor(keep, dtype=torch.long, device=device))
        if routing is not None:
            routing.begin_step(active, None)
        with model.recording_routing(routing):
            logits = model(torch.tensor(next_tokens, device=device)[:, None], cache)[:, -1].cpu()
    decode = time.perf_counter() - start
    for i, r in enumerate(results):
        r.decode_s = decode
        r.text = tokenizer.decode(r.token_ids)[:stop_at.get(i)]
        if routing is not None:
            r.routing = routing.summary(i)
    return results
