"""The reference MiniMax-M1 model in PyTorch."""
from .config import ConfigError, M1Config
from .m1 import M1ForCausalLM

__all__ = ["ConfigError", "M1Config", "M1ForCausalLM"]
