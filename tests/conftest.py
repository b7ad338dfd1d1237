import os

import pytest
import torch

# Without a GPU, Triton kernels run only in its interpreter, which must be chosen before triton is
# imported (it builds tl.* helpers at import): choose it for the whole session.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from m1bench.model.tiny import ensure_tiny


@pytest.fixture(autouse=True)
def reports_in_tmp(tmp_path, monkeypatch):
    """Runs end by writing a report under ./reports; tests keep theirs in their own tmp dir."""
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(tmp_path / "reports"))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A freshly made tiny checkpoint (seeded), shared by the whole test session."""
    return ensure_tiny(tmp_path_factory.mktemp("m1home") / "tiny")
