"""Lightning attention kernels: Triton on GPU, pure-PyTorch references (the oracle) everywhere."""
from m1bench.kernels.lightning import lightning_attention, lightning_decode

__all__ = ["lightning_attention", "lightning_decode"]
