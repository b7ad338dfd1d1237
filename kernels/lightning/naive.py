"""Pure-PyTorch lightning attention: the oracle every faster path is checked against.

Layout follows flash-linear-attention: q, k, v are [B, T, H, d]; `slopes` are the per-head decay
rates s_h (already scaled for the layer); the recurrent state is [B, H, d, d] (key dim x value dim).

    causal form:  o_t = sum_{p<=t} exp(-s (t - p)) (q_t . k_p) v_p   (+ exp(-s (t + 1)) q_t S0)
    recurrence:   S_t = exp(-s) S_{t-1} + k_t^T v_t ;  o_t = q_t S_t

Three implementations of the same function:
- `naive`: the quadratic causal form with an explicit decay matrix (tiny sizes only).
- `recurrent`: the token-by-token recurrence (what decode does).
- `blocked`: the chunked prefill of the Lightning Attention paper, used on CPU.
All accumulate in fp32 (fp64 stays fp64) and return the output in the input dtype and the
state in the accumulation dtype.
"""
import torch


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _prepare(q, k, v, slopes, initial_state):
    acc = _acc_dtype(q)
    B, T, H, d = q.shape
    e = v.shape[-1]
    s = slopes.to(device=q.device, dtype=acc).view(1, H, 1, 1)
    if initial_state is None:
        state = torch.zeros(B, H, d, e, device=q.device, dtype=acc)
    else:
        state = initial_state.to(acc)
    # [B, H, T, d] in the accumulation dtype
    qh, kh, vh = (x.transpose(1, 2).to(acc) for x in (q, k, v))
    return qh, kh, vh, s, state


def naive(q, k, v, slopes, initial_state=None):
    qh, kh, vh, s, state = _prepare(q, k, v, slopes, initial_state)
    T = qh.shape[2]
    pos = torch.arange(T, device=q.device, dtype=qh.dtype)
    dist = pos[:, None] - pos[None, :]
    decay = torch.where(dist >= 0, torch.exp(-s * dist.clamp(min=0)), torch.zeros((), dtype=qh.dtype))
    o = (qh @ kh.transpose(-1, -2) * decay) @ vh
    o = o + torch.exp(-s * (pos + 1)[:, None]) * (qh @ state)
    k_decay = torch.exp(-s * (T - 1 - pos)[:, None])
    final = torch.exp(-s * T) * state + (kh * k_decay).transpose(-1, -2) @ vh
    return o.transpose(1, 2).to(q.dtype), final


def recurrent(q, k, v, slopes, initial_state=None):
    qh, kh, vh, s, state = _prepare(q, k, v, slopes, initial_state)
    ratio = torch.exp(-s)
    out = []
    for t in range(qh.shape[2]):
        state = ratio * state + kh[:, :, t, :, None] * vh[:, :, t, None, :]
        out.append(qh[:, :, t, None, :] @ state)
    o = torch.cat(out, dim=2) if out else qh.new_zeros(*qh.shape[:3], vh.shape[-1])
    return o.transpose(1, 2).to(q.dtype), state


def blocked(q, k, v, slopes, initial_state=None, block_size: int = 256):
    qh, kh, vh, s, state = _prepare(q, k, v, slopes, initial_state)
    T = qh.shape[2]
    idx = torch.arange(block_size, device=q.device, dtype=qh.dtype)
    dist = idx[:, None] - idx[None, :]
    diag = torch.where(dist >= 0, torch.exp(-s * dist.clamp(min=0)), torch.zeros((), dtype=qh.dtype))
    q_decay = torch.exp(-s * (idx + 1)[:, None])  # lambda_q[a] = exp(-s (a + 1))
    o = torch.empty(*qh.shape[:3], vh.shape[-1], device=q.device, dtype=qh.dtype)
    for start in range(0, T, block_size):
        m = min(block_size, T - start)
        qi, ki, vi = (x[:, :, start:start + m] for x in (qh, kh, vh))
        intra = (qi @ ki.transpose(-1, -2) * diag[..., :m, :m]) @ vi
        inter = (qi * q_decay[..., :m, :]) @ state
        o[:, :, start:start + m] = intra + inter
        k_decay = torch.exp(-s * (m - 1 - idx[:m])[:, None])  # lambda_k[b] = exp(-s (m - 1 - b))
        state = torch.exp(-s * m) * state + (ki * k_decay).transpose(-1, -2) @ vi
    return o.transpose(1, 2).to(q.dtype), state


def decode(q, k, v, slopes, state, slots=None, silu: bool = False):
    """One token per sequence: q, k, v [B, H, d] (pre-activations when `silu`); `state` is a pool
    [P, H, d, d] updated in place at rows `slots` (default 0..B-1; a negative slot is padding: state
    untouched, output zero). Returns o [B, H, d] in q's dtype."""
    if silu:
        q, k, v = (torch.nn.functional.silu(x) for x in (q, k, v))
    B, H, _ = q.shape
    rows = torch.arange(B, device=q.device) if slots is None else slots.to(q.device, torch.long)
    real = rows >= 0
    acc = state.dtype
    s = slopes.to(device=q.device, dtype=acc).view(1, H, 1, 1)
    cur = torch.exp(-s) * state[rows[real]] + k[real].to(acc)[..., :, None] * v[real].to(acc)[..., None, :]
    state[rows[real]] = cur
    o = torch.zeros(q.shape[:2] + v.shape[-1:], device=q.device, dtype=q.dtype)
    o[real] = (q[real].to(acc)[..., None, :] @ cur).squeeze(-2).to(q.dtype)
    return o
