"""Packaging that follows the folders: the repository root is the import namespace `m1bench`
(`harness/` -> `m1bench.harness`, ...), and every package folder below it ships, so a new folder
needs no edit here or in pyproject.toml. Generic top-level names such as `kernels` would clash
with other distributions (transformers probes for a `kernels` package), hence one namespace."""
from setuptools import find_packages, setup

setup(
    package_dir={"m1bench": "."},
    packages=["m1bench"] + [f"m1bench.{name}" for name in find_packages(".", exclude=["tests", "tests.*"])],
)
