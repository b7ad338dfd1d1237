"""The `tiny` checkpoint: seeded random weights in the `tiny` preset plus the byte-level tokenizer,
created on first use so tests and the demo need no download."""
import json
import os
from pathlib import Path

import torch

from m1bench.model.checkpoint import save_checkpoint
from m1bench.model.m1 import M1ForCausalLM
from m1bench.model.presets import preset
from m1bench.model.tokenizer import CHAT_TEMPLATE, build_byte_tokenizer, load_tokenizer

TINY_SEED = 1234


def default_home() -> Path:
    return Path(os.environ.get("M1BENCH_HOME", "~/.cache/m1bench")).expanduser()


def init_random(model: M1ForCausalLM, seed: int, std: float = 0.02) -> M1ForCausalLM:
    """Deterministic N(0, std) weights, unit norm scales (what transformers' init does for MiniMax)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def create_checkpoint(directory, preset_name: str = "tiny", seed: int = TINY_SEED) -> Path:
    directory = Path(directory)
    build_byte_tokenizer(directory)
    tok = load_tokenizer(directory)
    config = preset(preset_name, eos_token_id=tok.eos_token_id)
    if tok.vocab_size > config.vocab_size:
        raise ValueError(f"tokenizer has {tok.vocab_size} tokens, preset {preset_name} only {config.vocab_size}")
    model = init_random(M1ForCausalLM(config), seed)
    return save_checkpoint(model, directory)


def ensure_tiny(path=None) -> Path:
    """The tiny checkpoint, made if missing; tokenizer files written by an older m1bench are
    rewritten (the seeded weights do not change)."""
    directory = Path(path) if path else default_home() / "tiny"
    if not (directory / "config.json").exists():
        create_checkpoint(directory)
    elif json.loads((directory / "tokenizer_config.json").read_text()).get("chat_template") != CHAT_TEMPLATE:
        build_byte_tokenizer(directory)
    return directory
