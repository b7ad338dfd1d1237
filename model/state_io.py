"""Saving and restoring inference state, so a long prefill can stop and resume.

A state file (safetensors) holds every lightning layer's (H, d, d) state, every softmax layer's KV
cache up to the current position, and the position; its metadata carries the checkpoint hash (it
refuses to load into another model) and the hash of the tokens consumed so far (it refuses to
continue a different prompt). Files are written to a temporary name and renamed, so a kill during
a save leaves the previous state intact."""
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from m1bench.harness.core.files import InputError
from m1bench.model.cache import InferenceCache
from m1bench.model.checkpoint import open_safetensors
from m1bench.model.m1 import M1ForCausalLM

FORMAT = "m1bench-inference-state/1"


class StateError(InputError):
    """A saved state does not fit this model or this prompt."""


def tokens_hash(tokens) -> str:
    return hashlib.sha256(json.dumps(list(map(int, tokens))).encode()).hexdigest()


def save_state(cache: InferenceCache, path, checkpoint: str, tokens) -> Path:
    """`tokens`: the token ids fed into `cache` so far (batch size 1)."""
    if cache.batch_size != 1:
        raise ValueError("only single-sequence state can be saved")
    n = cache.length
    tensors = {"real": cache.real[:, :n].contiguous(), "num_real": cache.num_real}
    tensors |= {f"lightning.{l}": t for l, t in cache.states.items()}
    tensors |= {f"keys.{l}": t[:, :n].contiguous() for l, t in cache.keys.items()}
    tensors |= {f"values.{l}": t[:, :n].contiguous() for l, t in cache.values.items()}
    meta = {"format": FORMAT, "checkpoint": checkpoint, "length": str(n), "tokens_sha256": tokens_hash(tokens)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    save_file({k: v.cpu() for k, v in tensors.items()}, tmp, metadata=meta)
    os.replace(tmp, path)
    return path


def load_state(model: M1ForCausalLM, path, checkpoint: str, tokens=None, capacity: int = 0) -> InferenceCache:
    """Restore a cache saved by `save_state`. `tokens` (the prompt) must begin with the saved ones."""
    path = Path(path)
    if not path.exists():
        raise StateError(f"{path}: no such state file")
    with open_safetensors(path, StateError) as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT or not {"checkpoint", "length", "tokens_sha256"} <= set(meta):
            raise StateError(f"{path}: not an m1bench state file (format {meta.get('format')!r}, want {FORMAT!r})")
        if meta["checkpoint"] != checkpoint:
            raise StateError(f"{path}: saved for checkpoint {meta['checkpoint']}, but this model is {checkpoint}; "
                             "a state only loads into the model that made it")
        n = int(meta["length"])
        if tokens is not None and (len(tokens) < n or tokens_hash(tokens[:n]) != meta["tokens_sha256"]):
            raise StateError(f"{path}: the saved {n} tokens are not the start of this prompt")
        cache = model.new_cache(1, capacity=max(n, capacity, 1))
        device = model.device
        cache.real[:, :n] = f.get_tensor("real").to(device)
        cache.num_real.copy_(f.get_tensor("num_real"))
        for l in cache.states:
            cache.states[l].copy_(f.get_tensor(f"lightning.{l}"))
        for l in cache.keys:
            cache.keys[l][:, :n] = f.get_tensor(f"keys.{l}").to(device)
            cache.values[l][:, :n] = f.get_tensor(f"values.{l}").to(device)
        cache.length = n
    return cache


@torch.inference_mode()
def resumable_prefill(model: M1ForCausalLM, tokens: list[int], checkpoint: str, save_to=None, load_from=None,
                      chunk_size: int = 4096, save_every: int = 1, progress=None):
    """Feed `tokens` in chunks of `chunk_size`, continuing from the state in `load_from` when given,
    and saving the state to `save_to` every `save_every` chunks (never after the last chunk: its
    logits are the result). Returns (cache, logits after the last token [V])."""
    if load_from is not None:
        cache = load_state(model, load_from, checkpoint, tokens, capacity=len(tokens))
    else:
        cache = model.new_cache(1, capacity=len(tokens))
    start = cache.length
    if start >= len(tokens):
        raise StateError(f"{load_from}: already holds all {len(tokens)} prompt tokens; nothing left to prefill")
    logits = None
    for i, pos in enumerate(range(start, len(tokens), chunk_size), 1):
        end = min(pos + chunk_size, len(tokens))
        logits = model(torch.tensor(tokens[pos:end], device=model.device)[None], cache, logits_to_keep=1)[0, -1]
        if save_to is not None and end < len(tokens) and i % save_every == 0:
            save_state(cache, save_to, checkpoint, tokens[:end])
        if progress:
            progress(end, len(tokens))
    return cache, logits
