"""RMSNorm as M1 computes it (fp32 statistics, normalised value rounded to the input dtype, then
scaled by the weight in that dtype), and the two fused forms the decode step uses. These are the
definitions: the model's RMSNorm module calls `rms_norm`, and the decode step's Triton kernels
(kernels/linear, which fuse these into the projection after them) are checked against them."""
import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def add_rms_norm(residual, y, alpha: float, beta: float, weight, eps: float):
    """x = residual * alpha + (y summed over dim 1) * beta (x = residual when y is None), then
    (x, rms_norm(x)). residual [N, D]; y [N, k, D]: a residual branch's k partial outputs (k = 1
    for attention, top-k expert outputs for the MoE)."""
    x = residual if y is None else residual * alpha + y.sum(1) * beta
    return x, rms_norm(x, weight, eps)


def gated_rms_norm(o, gate, weight, eps: float):
    """sigmoid(gate) * rms_norm(o): the lightning layer's output norm and gate. o, gate [N, D]."""
    return torch.sigmoid(gate) * rms_norm(o, weight, eps)
