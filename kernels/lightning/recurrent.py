"""Lightning attention decode in Triton: one token per sequence, state pool updated in place.

    S[slot] ← exp(−s) S[slot] + kᵀ v ;   o = q S[slot]

A negative slot is a padding row (vLLM pads a batch to its CUDA graph's size with slot -1): its
state is not touched and its output is zero.

Each program owns one (sequence, head, value-block): it reads its [K, BV] slice of the fp32
state once, writes it back once, and reduces q·S over K in registers. The state is all the
memory traffic there is (128 KB per head for d = 128), so the step is bound by that or, at
B=1, by the launch (capture it in a CUDA graph).
"""
import torch
import triton
import triton.language as tl

from m1bench.kernels.launch import pdl, wait_for_inputs
from m1bench.kernels.lightning.chunk import DTYPES


@triton.jit
def _decode_kernel(q, k, v, o, slopes, state, slots, stride_b, stride_h,
                   H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr,
                   BV: tl.constexpr, SILU: tl.constexpr, PDL: tl.constexpr):
    NV: tl.constexpr = (V + BV - 1) // BV
    pid = tl.program_id(0)
    i_bh = pid // NV
    i_v = pid % NV
    i_b = i_bh // H
    i_h = i_bh % H
    # The slots and this layer's state are not written by the kernel before this one in the step,
    # so they are read before the wait: the state's DRAM round trip overlaps that kernel's tail.
    slot = tl.load(slots + i_b).to(tl.int64)
    s = tl.load(slopes + i_h).to(tl.float32)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k = o_k < K
    m_v = o_v < V
    p_s = state + (slot * H + i_h) * K * V + o_k[:, None] * V + o_v[None, :]
    m_s = (o_k < tl.where(slot >= 0, K, 0))[:, None] & m_v[None, :]  # a padding row touches no state
    S = tl.load(p_s, mask=m_s, other=0.0) * tl.exp(-s)
    wait_for_inputs(PDL)
    row = i_b.to(tl.int64) * stride_b + i_h * stride_h  # q, k, v may be views of one [B, H, 3d] buffer
    b_q = tl.load(q + row + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_k = tl.load(k + row + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_v = tl.load(v + row + o_v, mask=m_v, other=0.0).to(tl.float32)
    if SILU:  # the model's SiLU(qkv), rounded to the input dtype as the unfused op rounds it
        b_q = (b_q * tl.sigmoid(b_q)).to(q.dtype.element_ty).to(tl.float32)
        b_k = (b_k * tl.sigmoid(b_k)).to(k.dtype.element_ty).to(tl.float32)
        b_v = (b_v * tl.sigmoid(b_v)).to(v.dtype.element_ty).to(tl.float32)
    S += b_k[:, None] * b_v[None, :]
    tl.store(p_s, S, mask=m_s)
    b_o = tl.where(slot >= 0, tl.sum(b_q[:, None] * S, axis=0), 0.0)
    tl.store(o + i_bh * V + o_v, b_o.to(o.dtype.element_ty), mask=m_v)


def decode_block(batch_heads: int, V: int) -> tuple[int, int]:
    """(BV, num_warps): small value blocks while there are too few (sequence, head) pairs to fill
    the GPU, wider ones once there are plenty. On an H200 (reports/bench), per step in a CUDA
    graph: B=1 at 64 heads 4.9 µs with (16, 2) against 6.1 with (32, 4); at 8 heads, 256 pairs
    11.0 µs with (64, 4) against 11.5 with (16, 2), 512 pairs 20.2 against 22.0; B=64 at 64
    heads 140 µs with (64, 4) against 150 with (32, 2)."""
    if batch_heads < 256:
        return min(16, triton.next_power_of_2(V)), 2
    return min(64, triton.next_power_of_2(V)), 4


def lightning_decode(q, k, v, slopes, state, slots=None, block=None, silu: bool = False):
    """Triton decode step. q, k [B, H, K], v [B, H, V] (any strides sharing one (batch, head) stride,
    e.g. views of a [B, H, 2K + V] buffer; last dim contiguous); state pool [P, H, K, V] fp32, updated
    in place at rows `slots` [B] (default 0..B-1; a negative slot: padding, zero output). `silu`
    applies SiLU to q, k, v first (fused). Returns o [B, H, V] in q's dtype."""
    B, H, K = q.shape
    V = v.shape[-1]
    if q.dtype not in DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"triton lightning decode takes q, k, v all of one dtype in {DTYPES}; got "
                        f"{q.dtype}, {k.dtype}, {v.dtype}")
    if state.dtype != torch.float32 or state.dim() != 4 or state.shape[1:] != (H, K, V):
        raise ValueError(f"state pool must be float32 [P, {H}, {K}, {V}]; got {state.dtype} "
                         f"{tuple(state.shape)}")
    if not state.is_contiguous():
        raise ValueError("state pool must be contiguous (it is updated in place)")
    if slots is None:
        slots = torch.arange(B, device=q.device, dtype=torch.int32)
    elif slots.shape != (B,):
        raise ValueError(f"slots must be [{B}]; got {tuple(slots.shape)}")
    if not all(x.stride()[:2] == q.stride()[:2] and x.stride(2) == 1 for x in (q, k, v)):
        buf = torch.cat([q, k, v], dim=-1)  # one [B, H, 2K + V] buffer: the kernel walks rows with one stride
        q, k, v = buf[..., :K], buf[..., K:2 * K], buf[..., 2 * K:]
    slopes = slopes.to(device=q.device, dtype=torch.float32).contiguous()
    o = torch.empty(B, H, V, device=q.device, dtype=q.dtype)
    BV, warps = block or decode_block(B * H, V)
    grid = (B * H * triton.cdiv(V, BV),)
    _decode_kernel[grid](q, k, v, o, slopes, state, slots.to(q.device), q.stride(0), q.stride(1),
                         H=H, K=K, V=V, BK=triton.next_power_of_2(K), BV=BV, SILU=silu, num_warps=warps,
                         **pdl(q.device))
    return o
