"""The tiny checkpoint in a shape vLLM's CPU attention kernel accepts.

vLLM's CPU attention backend supports head sizes 32, 64, 80, … (not the `tiny` preset's 16), so
vLLM runs on CPU use `tiny` with head_dim 32; everything else (layer mix, seeds, tokenizer) is the
`tiny` preset's.
"""
import dataclasses
from pathlib import Path

from m1bench.model.checkpoint import save_checkpoint
from m1bench.model.m1 import M1ForCausalLM
from m1bench.model.presets import preset
from m1bench.model.tiny import TINY_SEED, default_home, init_random
from m1bench.model.tokenizer import build_byte_tokenizer, load_tokenizer

VLLM_TINY_HEAD_DIM = 32


def ensure_vllm_tiny(path=None) -> Path:
    directory = Path(path) if path else default_home() / "tiny-vllm"
    if (directory / "config.json").exists():
        return directory
    build_byte_tokenizer(directory)
    tok = load_tokenizer(directory)
    config = dataclasses.replace(preset("tiny", eos_token_id=tok.eos_token_id), head_dim=VLLM_TINY_HEAD_DIM)
    save_checkpoint(init_random(M1ForCausalLM(config), TINY_SEED), directory)
    return directory
