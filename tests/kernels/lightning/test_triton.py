"""The Triton lightning kernels, run on CPU by Triton's interpreter, against the float64 recurrence.

Every check draws fresh random inputs and poisons the outputs the kernels allocate (NaN), so an
element the kernel never writes fails the comparison. The interpreter runs a chunk of 16 tokens
(triton_prefill._configs), so T = 37 ends in a partial chunk and T = 50 crosses three boundaries.
"""
import importlib
import os
from types import SimpleNamespace

import pytest
import torch

# Before triton is imported: its own @jit library (tl.sum, tl.zeros) is defined at import time,
# interpreted or compiled for the whole process. CPU-only CI has no other use for compiled Triton.
os.environ.setdefault("TRITON_INTERPRET", "1")
triton = pytest.importorskip("triton")

from m1bench.kernels import lightning_attention, lightning_decode
from m1bench.kernels.lightning import naive as reference  # noqa: E402
from m1bench.model.config import alibi_slopes  # noqa: E402

TOL = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 1e-2}


@pytest.fixture(scope="module")
def tk():
    """The kernel modules, defined under the interpreter (reloaded in case they were not)."""
    from triton.runtime.interpreter import InterpretedFunction
    if not isinstance(triton.language.standard.sum, InterpretedFunction):
        pytest.fail("triton was imported before TRITON_INTERPRET=1 was set; run pytest with "
                    "TRITON_INTERPRET=1 in the environment")
    names = ("m1bench.kernels.lightning.chunk", "m1bench.kernels.lightning.recurrent")
    mods = [importlib.reload(importlib.import_module(n)) for n in names]
    assert mods[0].INTERPRET
    return SimpleNamespace(prefill=mods[0].lightning_prefill, decode=mods[1].lightning_decode)


@pytest.fixture
def poisoned(monkeypatch):
    """torch.empty hands out NaN-filled float tensors for the length of a test."""
    real = torch.empty

    def nan_empty(*a, **kw):
        t = real(*a, **kw)
        return t.fill_(float("nan")) if t.is_floating_point() else t
    monkeypatch.setattr(torch, "empty", nan_empty)


def rel(a, b):
    assert not torch.isnan(a).any(), "output has unwritten (NaN) elements"
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def draw(shape_qk, V, dtype, seed, H):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(*shape_qk, generator=g).to(dtype) for _ in range(2))
    v = torch.randn(*shape_qk[:-1], V, generator=g).to(dtype)
    # MiniMax slopes of the first and the last layer (decay ~1e-5: memory over the whole prompt).
    slopes = torch.tensor(alibi_slopes(H)) * torch.tensor([1.0, 1e-5]).repeat(H)[:H]
    return q, k, v, slopes


def oracle(q, k, v, slopes, h0=None):
    return reference.recurrent(q.double(), k.double(), v.double(), slopes.double(),
                               None if h0 is None else h0.double())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("T", [1, 16, 37, 50])
def test_prefill_matches_float64_recurrence(tk, poisoned, dtype, T):
    B, H, K = 2, 3, 32
    q, k, v, slopes = draw((B, T, H, K), K, dtype, seed=T, H=H)
    h0 = torch.randn(B, H, K, K)
    o, st = tk.prefill(q, k, v, slopes, h0)
    o_r, s_r = oracle(q, k, v, slopes, h0)
    assert o.dtype == dtype and o.shape == (B, T, H, K) and st.dtype == torch.float32
    assert rel(o, o_r) < TOL[dtype]
    assert rel(st, s_r) < TOL[dtype]


def test_prefill_key_and_value_widths_differ_no_initial_state(tk, poisoned):
    q, k, v, slopes = draw((1, 21, 2, 16), 48, torch.float32, seed=11, H=2)
    o, st = tk.prefill(q, k, v, slopes)
    o_r, s_r = oracle(q, k, v, slopes)
    assert st.shape == (1, 2, 16, 48)
    assert rel(o, o_r) < 1e-5 and rel(st, s_r) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_prefill_reads_views_of_one_projection(tk, poisoned, dtype):
    """The model hands the kernel q, k, v as views of one [B, T, H, 3d] projection: read in place,
    no copies; the varlen path reads them the same way."""
    B, T, H, K = 2, 37, 3, 16
    g = torch.Generator().manual_seed(5)
    qkv = torch.randn(B, T, H, 3 * K, generator=g).to(dtype)
    q, k, v = qkv.split(K, dim=-1)
    slopes, h0 = torch.tensor(alibi_slopes(H)), torch.randn(B, H, K, K, generator=g)
    o, st = tk.prefill(q, k, v, slopes, h0)
    o_r, s_r = oracle(q, k, v, slopes, h0)
    tol = TOL[dtype]
    assert rel(o, o_r) < tol and rel(st, s_r) < tol
    flat = [x.reshape(1, B * T, H, K) for x in (q, k, v)]  # one packed batch of the two sequences
    o_p, st_p = tk.prefill(*flat, slopes, h0, torch.tensor([0, T, 2 * T]))
    assert rel(o_p.view(B, T, H, K), o_r) < tol and rel(st_p, s_r) < tol


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_prefill_varlen_with_empty_and_single_token_sequences(tk, poisoned, dtype):
    lens = [0, 1, 37, 16, 0, 5, 1]
    H, K = 2, 16
    q, k, v, slopes = draw((1, sum(lens), H, K), K, dtype, seed=len(lens), H=H)
    h0 = torch.randn(len(lens), H, K, K)
    cu = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), dtype=torch.int32)
    o, st = tk.prefill(q, k, v, slopes, h0, cu)
    assert st.shape == (len(lens), H, K, K)
    for i, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        o_i, s_i = oracle(q[:, a:b], k[:, a:b], v[:, a:b], slopes, h0[i:i + 1])
        if b > a:
            assert rel(o[:, a:b], o_i) < TOL[dtype]
        assert rel(st[i:i + 1], s_i) < TOL[dtype]


def test_dispatcher_passes_packed_batches_to_the_triton_path(tk, poisoned):
    lens = [3, 0, 20]
    q, k, v, slopes = draw((1, sum(lens), 2, 16), 16, torch.float32, seed=5, H=2)
    cu = torch.tensor([0, 3, 3, 23])
    o, st = lightning_attention(q, k, v, slopes, cu_seqlens=cu, impl="triton")
    o_b, st_b = lightning_attention(q, k, v, slopes, cu_seqlens=cu, impl="blocked")
    assert rel(o, o_b) < 1e-5 and rel(st, st_b) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_updates_only_its_slots(tk, poisoned, dtype):
    """Row 1 pads the batch (slot -1, as vLLM pads a CUDA-graph batch): zero output, no state touched."""
    B, H, K, V, P = 4, 2, 32, 48, 6  # V = 48: two value blocks, the second one partial
    g = torch.Generator().manual_seed(13)
    q, k = (torch.randn(B, H, K, generator=g).to(dtype) for _ in range(2))
    v = torch.randn(B, H, V, generator=g).to(dtype)
    slopes = torch.tensor(alibi_slopes(H))
    pool = torch.randn(P, H, K, V, generator=g)
    slots = torch.tensor([5, -1, 0, 2])
    real = slots[slots >= 0]
    want_pool = pool.double()
    o_r = reference.decode(q.double(), k.double(), v.double(), slopes.double(), want_pool, slots)
    before = pool.clone()
    o = tk.decode(q, k, v, slopes, pool, slots)
    assert o.dtype == dtype and rel(o, o_r) < TOL[dtype]
    assert torch.equal(o[1], torch.zeros_like(o[1])) and torch.equal(o_r[1], torch.zeros_like(o_r[1]))
    assert rel(pool[real], want_pool[real]) < 1e-6
    others = [i for i in range(P) if i not in real.tolist()]
    assert torch.equal(pool[others], before[others])


def test_prefill_then_decode_continues_the_recurrence(tk, poisoned):
    T, steps, H, K = 29, 3, 2, 16
    q, k, v, slopes = draw((2, T + steps, H, K), K, torch.float32, seed=17, H=H)
    o_r, s_r = oracle(q, k, v, slopes)
    o_p, st = tk.prefill(q[:, :T], k[:, :T], v[:, :T], slopes)
    pool = torch.zeros(4, H, K, K)
    slots = torch.tensor([3, 1])
    pool[slots] = st
    outs = [lightning_decode(q[:, t], k[:, t], v[:, t], slopes, pool, slots, impl="triton")
            for t in range(T, T + steps)]
    assert rel(o_p, o_r[:, :T]) < 1e-5
    assert rel(torch.stack(outs, 1), o_r[:, T:]) < 1e-5
    assert rel(pool[slots], s_r) < 1e-5


def test_bad_inputs_get_clear_errors(tk):
    q, k, v, slopes = draw((1, 4, 2, 16), 16, torch.float32, seed=1, H=2)
    with pytest.raises(TypeError, match="float64"):
        tk.prefill(q.double(), k.double(), v.double(), slopes)
    with pytest.raises(ValueError, match="initial_state"):
        tk.prefill(q, k, v, slopes, torch.zeros(2, 2, 16, 16))
    with pytest.raises(ValueError, match="state pool"):
        tk.decode(q[:, 0], k[:, 0], v[:, 0], slopes, torch.zeros(4, 2, 16, 16, dtype=torch.float64))


def test_the_faulting_sequence_float32_calls_then_a_one_token_bfloat16_call(tk, poisoned):
    """The call sequence of ../shared/repro/lightning_prefill_sequence.py at interpreter sizes: float32
    prefills (dense, with initial states, packed with empty and one-token sequences) and a float32
    decode into a pool, then the first bfloat16 prefill of ONE token. On the H200 that call faulted
    (invalid shared-memory reads) while the autotuner ran every candidate config on a kernel Triton
    had specialised for T == 1. The interpreter cannot show a shared-memory fault; it checks that the
    sequence computes the recurrence at every step, and the test below that nothing tunes or
    specialises per call any more (on the device the repro passes memcheck with 0 errors)."""
    H, K = 2, 16
    for dtype in (torch.float32, torch.bfloat16):
        for seed, (B, T, init) in enumerate([(1, 1, False), (2, 19, True), (1, 40, False)]):
            q, k, v, slopes = draw((B, T, H, K), K, dtype, seed=seed, H=H)
            h0 = torch.randn(B, H, K, K) if init else None
            o, st = tk.prefill(q, k, v, slopes, h0)
            o_r, s_r = oracle(q, k, v, slopes, h0)
            assert rel(o, o_r) < TOL[dtype] and rel(st, s_r) < TOL[dtype]
        lens = [7, 0, 1, 20]
        q, k, v, slopes = draw((1, sum(lens), H, K), K, dtype, seed=9, H=H)
        cu = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), dtype=torch.int32)
        o, st = tk.prefill(q, k, v, slopes, None, cu)
        o_b, st_b = lightning_attention(q, k, v, slopes, cu_seqlens=cu, impl="blocked")
        assert rel(o, o_b) < TOL[dtype] and rel(st, st_b) < TOL[dtype]


def compiled_mode(probe: str) -> str:
    """Run `probe` in a fresh interpreter with Triton's compiled-mode definitions; its stdout."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_prefill_kernel_is_neither_autotuned_nor_specialised_on_length():
    """One compiled kernel per dtype and config serves every length, and no call runs other configs."""
    probe = ("from triton.runtime.jit import JITFunction; from m1bench.kernels.lightning import chunk; "
             "k = chunk._prefill_kernel; assert type(k) is JITFunction, type(k); "
             "assert [p.name for p in k.params if p.do_not_specialize] == ['T']; print('ok')")
    assert compiled_mode(probe).strip() == "ok"


def test_an_unpipelined_prefill_config_is_refused_before_it_reaches_a_gpu():
    """One stage compiles to the kernel that read shared memory out of bounds on the H200 (memcheck);
    a caller's `config` with fewer than two stages gets an error naming it, not a launch."""
    probe = ("import torch; from m1bench.kernels.lightning.chunk import Config, lightning_prefill\n"
             "q = torch.zeros(1, 8, 2, 16, dtype=torch.bfloat16)\n"
             "try:\n    lightning_prefill(q, q, q, torch.ones(2), config=Config(64, 32, 4, 1))\n"
             "except ValueError as e:\n    print(e)\n")
    said = compiled_mode(probe)
    assert "num_stages must be >= 2" in said and "BV=32" in said, said
