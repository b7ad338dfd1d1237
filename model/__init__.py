"""The reference MiniMax-M1 model in PyTorch."""
from m1bench.model.config import ConfigError, M1Config
from m1bench.model.m1 import M1ForCausalLM

__all__ = ["ConfigError", "M1Config", "M1ForCausalLM"]
