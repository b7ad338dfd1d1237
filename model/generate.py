"""The oracle generation loop: a fixed batch through the reference model, as plainly as it can be
written (greedy or temperature/top-k/top-p sampling with per-request seeds, EOS and stop strings,
max new tokens; finished sequences leave the batch). Each prompt is prefilled alone (no padding, so
attention needs no mask) into a slot of a decode pool, then the batch decodes through the decode
step (model/decode.py: CUDA graphs on GPU). The engine that serves and evaluates (harness/engine,
continuous batching) is checked against it token for token; `m1bench generate`, the RL rollouts
and the profilers call it directly."""
import time
import weakref
from dataclasses import dataclass, field

import torch

from m1bench.model.decode import DecodeRunner
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
    """Prefill each prompt, then sample the batch. With `routing`, every request's expert choices
    are counted and summarised in `Generation.routing`."""
    params = params if isinstance(params, list) else [params] * len(prompts)
    if len(params) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(params)} sampling params")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    runner = decode_runner(model, len(prompts), max(len(p) + q.max_new_tokens for p, q in zip(prompts, params)))
    start = time.perf_counter()
    logits = []
    for i, p in enumerate(prompts):
        if routing is not None:
            routing.begin_step([i], None)  # prompt i's expert choices count for request i
        logits.append(prefill(model, p, runner.pool, i, routing))
    logits = torch.stack(logits)
    results = [Generation(prompt_tokens=len(p), prefill_s=time.perf_counter() - start) for p in prompts]
    return _decode(model, tokenizer, runner, logits.cpu(), params, results, routing)


def prefill(model: M1ForCausalLM, prompt: list[int], pool, slot: int, routing: RoutingRecorder | None = None,
            chunk: int = 1 << 16) -> torch.Tensor:
    """Feed `prompt` (in chunks of `chunk` tokens) into pool slot `slot`; the logits after its last token [V].
    `routing` counts into the request row its caller chose with `begin_step` (a pool slot is not a
    request: the engine's are reused)."""
    cache = model.new_cache(1, capacity=len(prompt))
    ids = torch.tensor([prompt], device=model.device)
    with model.recording_routing(routing):
        for s in range(0, len(prompt), chunk):
            logits = model(ids[:, s:s + chunk], cache, logits_to_keep=1)[0, -1]
    pool.load(slot, cache)
    return logits


_RUNNERS: "weakref.WeakKeyDictionary[M1ForCausalLM, DecodeRunner]" = weakref.WeakKeyDictionary()


def decode_runner(model: M1ForCausalLM, num_slots: int, capacity: int) -> DecodeRunner:
    """A runner over a pool of at least `num_slots` slots of at least `capacity` tokens: the model's
    last one when it is big enough (its CUDA graphs are already captured), else a new one."""
    runner = _RUNNERS.get(model)
    if runner is None or runner.pool.num_slots < num_slots or runner.pool.capacity < capacity:
        _RUNNERS.pop(model, None)  # free the old pool first
        runner = _RUNNERS[model] = DecodeRunner(model, model.new_pool(num_slots, capacity))
    return runner


@torch.inference_mode()
def continue_generation(model: M1ForCausalLM, tokenizer: ChatTokenizer, cache, last_logits: torch.Tensor,
                        params: SamplingParams, prompt_tokens: int) -> Generation:
    """Sample one sequence whose prompt is already in `cache` (e.g. a resumed long prefill);
    `last_logits` [V] are the logits after its last prompt token."""
    runner = decode_runner(model, 1, prompt_tokens + params.max_new_tokens)
    runner.pool.load(0, cache)
    return _decode(model, tokenizer, runner, last_logits[None].cpu(), [params],
                   [Generation(prompt_tokens=prompt_tokens)], None)[0]


def _decode(model, tokenizer, runner: DecodeRunner, logits, params, results, routing) -> list[Generation]:
    generators = _generators(params)
    stop_at: dict[int, int] = {}  # result index -> character offset of the first stop string
    active = [i for i, p in enumerate(params) if p.max_new_tokens > 0]  # result i decodes in pool slot i
    start = time.perf_counter()
    while active:
        next_tokens, keep = [], []
        for i in active:
            r, p = results[i], params[i]
            tok = sample_token(logits[i], p, generators[i])
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
            keep.append(i)
        active = keep
        if not active:
            break
        if routing is not None:
            routing.begin_step(active, None)
        step = runner.step(next_tokens, active, routing)
        logits = torch.zeros(len(results), step.shape[-1])
        logits[active] = step.cpu()
    decode = time.perf_counter() - start
    for i, r in enumerate(results):
        r.decode_s = decode
        r.text = tokenizer.decode(r.token_ids)[:stop_at.get(i)]
        if routing is not None:
            r.routing = routing.summary(i)
    return results
