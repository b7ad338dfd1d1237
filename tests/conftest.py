import pytest

from m1bench.model.tiny import ensure_tiny


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A freshly made tiny checkpoint (seeded), shared by the whole test session."""
    return ensure_tiny(tmp_path_factory.mktemp("m1home") / "tiny")
