"""The reference MiniMax-M1 model in PyTorch. The package itself imports no torch (its config and
presets are plain Python, so `m1bench --help` needs none): import `m1bench.model.m1` for the model."""
from m1bench.model.config import ConfigError, M1Config

__all__ = ["ConfigError", "M1Config"]
