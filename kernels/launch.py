"""Programmatic dependent launch (Hopper and newer): a kernel launched with it may be scheduled
while the kernel before it in the stream is still running, so the decode step's chain of small
kernels does not pay a launch and a ramp-up for each one. Every such kernel calls
`wait_for_inputs` before it reads or writes global memory (the wait returns once the previous
grid has finished and its writes are visible), and then lets its own dependents be scheduled.
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
