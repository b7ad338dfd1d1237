"""The pure-PyTorch lightning paths agree with each other in float64, and the dispatcher's packed
(cu_seqlens) loop equals calling each sequence on its own."""
import pytest
import torch

from m1bench.kernels import lightning_attention, lightning_decode
from m1bench.kernels.lightning import naive as reference
from m1bench.model.config import alibi_slopes


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def inputs(B, T, H, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, T, H, d, generator=g, dtype=dtype) for _ in range(3))
    h0 = torch.randn(B, H, d, d, generator=g, dtype=dtype)
    return q, k, v, torch.tensor(alibi_slopes(H), dtype=dtype), h0


@pytest.mark.parametrize("T", [1, 7, 8, 29])
@pytest.mark.parametrize("with_state", [False, True])
def test_three_forms_agree_in_float64(T, with_state):
    q, k, v, s, h0 = inputs(2, T, 3, 8, seed=T)
    h0 = h0 if with_state else None
    o_r, s_r = reference.recurrent(q, k, v, s, h0)
    for fn in (reference.naive, lambda *a: reference.blocked(*a, block_size=8)):
        o, st = fn(q, k, v, s, h0)
        assert o.dtype == torch.float64 and st.dtype == torch.float64
        assert rel(o, o_r) < 1e-10 and rel(st, s_r) < 1e-10


def test_recurrence_matches_the_causal_sum_written_out():
    # o_t = sum_{p<=t} exp(-s(t-p)) (q_t . k_p) v_p + exp(-s(t+1)) q_t S0, one head, by hand.
    q, k, v, s, h0 = inputs(1, 5, 1, 4, seed=3)
    o, _ = reference.recurrent(q, k, v, s, h0)
    sh = s[0]
    for t in range(5):
        want = torch.exp(-sh * (t + 1)) * (q[0, t, 0] @ h0[0, 0])
        for p in range(t + 1):
            want = want + torch.exp(-sh * (t - p)) * (q[0, t, 0] @ k[0, p, 0]) * v[0, p, 0]
        assert rel(o[0, t, 0], want) < 1e-12


def test_decode_steps_continue_the_recurrence():
    q, k, v, s, h0 = inputs(2, 6, 2, 8, seed=5)
    o_r, s_r = reference.recurrent(q, k, v, s, h0)
    pool = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    slots = torch.tensor([3, 1])
    pool[slots] = h0
    untouched = pool[[0, 2]].clone()
    outs = [lightning_decode(q[:, t], k[:, t], v[:, t], s, pool, slots) for t in range(6)]
    assert rel(torch.stack(outs, 1), o_r) < 1e-12
    assert rel(pool[slots], s_r) < 1e-12
    assert torch.equal(pool[[0, 2]], untouched)


def test_packed_dispatch_equals_each_sequence_alone():
    lens = [0, 1, 9, 4, 0]
    q, k, v, s, _ = inputs(1, sum(lens), 2, 8, seed=7)
    h0 = torch.randn(len(lens), 2, 8, 8, dtype=torch.float64)
    cu = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist())
    o, st = lightning_attention(q, k, v, s, initial_state=h0, cu_seqlens=cu, impl="blocked")
    assert st.shape == (len(lens), 2, 8, 8)
    for i, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        o_i, s_i = reference.recurrent(q[:, a:b], k[:, a:b], v[:, a:b], s, h0[i:i + 1])
        if b > a:
            assert rel(o[:, a:b], o_i) < 1e-10
        assert rel(st[i:i + 1], s_i) < 1e-10


def test_dispatch_defaults_to_pytorch_on_cpu_and_rejects_bad_shapes():
    q, k, v, s, _ = inputs(1, 4, 2, 8, seed=9)
    o, st = lightning_attention(q, k, v, s)
    assert rel(o, reference.recurrent(q, k, v, s)[0]) < 1e-10
    with pytest.raises(ValueError, match=r"\[B, T, H, d\]"):
        lightning_attention(q[0], k[0], v[0], s)
    with pytest.raises(ValueError, match="batch size 1"):
        lightning_attention(q.expand(2, -1, -1, -1), k.expand(2, -1, -1, -1), v.expand(2, -1, -1, -1), s,
                            cu_seqlens=torch.tensor([0, 4]))
