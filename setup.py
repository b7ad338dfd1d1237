"""Packaging that follows the folders: the repository root is the import namespace `m1bench`
(`harness/` -> `m1bench.harness`, ...), and every package folder below it ships, so a new folder
needs no edit here or in pyproject.toml. Generic top-level names such as `kernels` would clash
with other distributions (transformers probes for a `kernels` package), hence one namespace.

Folders of data inside a package (reports/schema/, harness/eval/configs/) are packages to
setuptools too (namespace packages): listed, their files ship by pyproject.toml's package-data
without setuptools warning that an importable folder is missing from `packages`."""
import warnings

from setuptools import find_namespace_packages, find_packages, setup
from setuptools.warnings import InformationOnly

# An editable install tells every project to mind working-directory folders named like its package;
# here the package is the repository root itself, so there is no such folder to mind.
warnings.filterwarnings("ignore", message="Editable installation", category=InformationOnly)

code = find_packages(".", exclude=["tests", "tests.*"])
data = find_namespace_packages(".", include=[f"{p}.*" for p in code if "." not in p])

setup(
    package_dir={"m1bench": "."},
    packages=["m1bench"] + [f"m1bench.{name}" for name in sorted({*code, *data})],
)
