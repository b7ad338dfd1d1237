"""Programmatic dependent launch (Hopper and newer): a kernel launched with it may be scheduled
while the kernel before it in the stream is still running, so the decode step's chain of small
kernels does not pay a launch and a ramp-up for each one. Every such kernel calls
`wait_for_inputs` before it writes global memory or reads what the kernel just before it writes
(the wait returns once that grid has finished and its writes are visible), and then lets its own
dependents be scheduled. So when a kernel starts, the one two back has finished (the wait of the
one between returned before it let this one start): loads of anything else (weights, a layer's
own state, what was written two kernels back) go before the wait and overlap the previous
kernel. Only m1bench's kernels launch so; a kernel of another library runs to its end before the
next one starts, as in any stream.
Off in Triton's interpreter and before Hopper; `M1BENCH_PDL=0` turns it off for measurements."""
import functools
import os

import torch
import triton
import triton.language as tl

from m1bench.kernels.lightning.chunk import INTERPRET


@functools.lru_cache
def _pdl(device: torch.device) -> bool:
    return (not INTERPRET and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 9
            and os.environ.get("M1BENCH_PDL", "1") != "0")


def pdl(device) -> dict:
    """The `PDL` constexpr and launch option for a kernel on `device`: splat into the launch."""
    return {"PDL": True, "launch_pdl": True} if _pdl(torch.device(device)) else {"PDL": False}


@triton.jit
def wait_for_inputs(PDL: tl.constexpr):
    if PDL:
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()


# Wider rows go to cuBLAS: as GEMVs, M1's 6144-wide rows made the M1-slice decode step 1.6x slower
# on an H200 (3.45 against 2.18 ms), each program's reduction across its threads outweighing its load.
GEMV_MAX_WIDTH = 4096


def gemv_tile(width: int, tiles: int = 1) -> tuple[int, int, int]:
    """(BN, BD, num_warps) of a matrix-vector kernel whose programs load `tiles` weight tiles of BN
    whole rows of `width` (padded to BD, a power of two) at once: one large load per program keeps
    enough bytes in flight to stream the weights at the memory's rate, with no loop whose every
    iteration waits for its own load. 64 fp32 values per thread at most."""
    BD = triton.next_power_of_2(width)
    warps = 4 if BD * tiles <= 8192 else 8
    return max(1, 64 * 32 * warps // (BD * tiles)), BD, warps
