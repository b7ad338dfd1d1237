"""Which implementation an op runs: CUDA tensors take its Triton kernel (when triton is importable),
everything else its PyTorch reference; `impl` forces one (tests run Triton on CPU tensors under
TRITON_INTERPRET=1). Triton modules are imported on first use: importing triton costs a second, and
the kernels must be defined after a test has chosen the interpreter."""
import importlib.util
from contextlib import contextmanager

import torch

HAVE_TRITON = importlib.util.find_spec("triton") is not None
IMPLS = ("auto", "triton", "torch")
_default = "auto"


def use_triton(x: torch.Tensor, impl: str = "auto") -> bool:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    impl = _default if impl == "auto" else impl
    return impl == "triton" or (impl == "auto" and x.is_cuda and HAVE_TRITON)


@contextmanager
def default_impl(impl: str):
    """Every op called with impl='auto' inside the block takes `impl` (a whole model step on one path)."""
    global _default
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    saved, _default = _default, impl
    try:
        yield
    finally:
        _default = saved
