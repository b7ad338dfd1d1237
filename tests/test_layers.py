"""The import direction between layers, read from the source (an AST scan, so imports inside
functions and under TYPE_CHECKING count: a lazy import is still a dependency).

    harness/core   imports nothing of m1bench; anything may import it
    kernels        -> core
    model          -> kernels
    harness/engine -> model
    harness/clients-> engine
    suites         -> clients
    harness/eval   -> suites
    harness/rl     -> suites
    reports        -> core and the suite registry (m1bench.suites)
    harness/serve  -> engine
    harness/profile-> model, clients
    harness/bench  -> anything but cli
    harness/cli    -> anything; nothing imports cli

An arrow admits the layers below its target too (eval may import clients). The root package
`m1bench` holds only the version string and counts as core.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO

CODE_DIRS = ("harness", "kernels", "model", "suites", "reports")

# Layer name -> module prefix, most specific first.
LAYERS = {
    "core": ("m1bench.harness.core",), "engine": ("m1bench.harness.engine",), "clients": ("m1bench.harness.clients",),
    "eval": ("m1bench.harness.eval",), "serve": ("m1bench.harness.serve",), "profile": ("m1bench.harness.profile",),
    "rl": ("m1bench.harness.rl",), "bench": ("m1bench.harness.bench",), "cli": ("m1bench.harness.cli",),
    "kernels": ("m1bench.kernels",), "model": ("m1bench.model",), "suites": ("m1bench.suites",),
    "reports": ("m1bench.reports",),
}
_BELOW = {"core": set(), "kernels": {"core"}}
_BELOW["model"] = {"kernels"} | _BELOW["kernels"]
_BELOW["engine"] = {"model"} | _BELOW["model"]
_BELOW["clients"] = {"engine"} | _BELOW["engine"]
_BELOW["suites"] = {"clients"} | _BELOW["clients"]
_BELOW["eval"] = {"suites"} | _BELOW["suites"]
_BELOW["rl"] = {"suites"} | _BELOW["suites"]
_BELOW["serve"] = {"engine"} | _BELOW["engine"]
_BELOW["profile"] = {"model", "clients"} | _BELOW["clients"]
_BELOW["reports"] = {"core"}
_BELOW["bench"] = set(LAYERS) - {"bench", "cli"}
_BELOW["cli"] = set(LAYERS) - {"cli"}
SUITE_REGISTRY = "m1bench.suites"  # the one module of the suites layer that reports may import


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["m1bench", *parts])


def layer_of(module: str) -> str | None:
    if module == "m1bench":
        return "core"
    for layer, prefixes in LAYERS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    return None  # m1bench.harness itself: a docstring, no imports


def sources() -> dict[str, Path]:
    return {module_name(p): p for d in CODE_DIRS for p in sorted((REPO / d).rglob("*.py"))}


def imports(module: str, path: Path) -> list[tuple[str, int]]:
    """Every m1bench module this file imports, with the line, wherever the import statement is."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "m1bench"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "m1bench":
                out.append((target, node.lineno))
    return out


def edges() -> list[tuple[str, str, str, int]]:
    """(importer, imported, file, line) for every import of m1bench code in the package."""
    return [(m, target, str(p.relative_to(REPO)), line) for m, p in sources().items() for target, line in imports(m, p)]


def violations() -> list[str]:
    out = []
    for importer, target, file, line in edges():
        src, dst = layer_of(importer), layer_of(target)
        if src is None:
            out.append(f"{file}:{line}: the package m1bench.harness imports nothing ({target})")
        elif dst is None or dst == src:
            continue
        elif src == "reports" and dst == "suites":
            if target != SUITE_REGISTRY:
                out.append(f"{file}:{line}: reports may import the suite registry only, not {target}")
        elif dst not in _BELOW[src]:
            out.append(f"{file}:{line}: {src} -> {dst} ({importer} imports {target})")
    return out


def test_imports_follow_the_layers():
    assert violations() == []


def test_the_scan_sees_imports_inside_functions_and_relative_ones(tmp_path):
    """The checker itself: a lazy import, a relative import and a TYPE_CHECKING import are edges."""
    f = tmp_path / "mod.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from m1bench.harness.eval import runner\n"
                 "def f():\n    from ..cli import main\nfrom . import sibling\n")
    found = {t for t, _ in imports("m1bench.harness.core.mod", f)}
    assert found == {"m1bench.harness.eval", "m1bench.harness.cli", "m1bench.harness.core"}


def test_every_module_belongs_to_a_layer():
    strays = [m for m in sources() if layer_of(m) is None and m != "m1bench.harness"]
    assert strays == []


def _cycles() -> list[list[str]]:
    """Import cycles between modules (Tarjan's strongly connected components). A package's own
    `__init__` importing its modules is not a cycle with them: that edge is implicit in Python."""
    graph: dict[str, set[str]] = {}
    mods = set(sources())
    for importer, target, _, _ in edges():
        while target not in mods and "." in target:  # `from pkg import name`: the package
            target = target.rpartition(".")[0]
        if target in mods and target != importer and not importer.startswith(target + "."):
            graph.setdefault(importer, set()).add(target)
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles() == []


@pytest.mark.parametrize("layer", ["cli"])
def test_nothing_imports_cli(layer):
    bad = [f"{file}:{line}" for importer, target, file, line in edges()
           if layer_of(target) == layer and layer_of(importer) != layer]
    assert bad == []
