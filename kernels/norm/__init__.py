"""RMSNorm and the two fused forms the decode step uses, as PyTorch definitions (reference.py).
On CUDA the decode step runs them fused into the projection after them (kernels/linear)."""
from m1bench.kernels.norm.reference import add_rms_norm, gated_rms_norm, rms_norm

__all__ = ["add_rms_norm", "gated_rms_norm", "rms_norm"]
