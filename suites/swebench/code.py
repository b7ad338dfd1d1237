"""What the localisation and repair prompts show of a repository: its structure (a tree of
source files), the skeleton of a Python file (classes, functions, methods and module-level names,
each with its line span; no bodies) and code excerpts around chosen elements and lines."""
from __future__ import annotations

import ast
from dataclasses import dataclass

SOURCE_SUFFIXES = (".py",)  # SWE-bench Verified: Python repositories


def source_files(files: list[str]) -> list[str]:
    return [f for f in files if f.endswith(SOURCE_SUFFIXES)]


def source_lines(source: str) -> list[str]:
    """Lines as Python numbers them (str.splitlines would also split on form feeds and the like)."""
    lines = source.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def render_tree(paths: list[str]) -> str:
    """Paths as an indented directory tree (directories end with '/')."""
    lines: list[str] = []
    shown: set[tuple[str, ...]] = set()
    for p in sorted(paths):
        parts = p.split("/")
        for depth in range(len(parts) - 1):
            key = tuple(parts[: depth + 1])
            if key not in shown:
                shown.add(key)
                lines.append("    " * depth + parts[depth] + "/")
        lines.append("    " * (len(parts) - 1) + parts[-1])
    return "\n".join(lines)


@dataclass(frozen=True)
class Element:
    kind: str  # "class" | "function" | "variable"
    name: str  # qualified inside the file: Class, Class.method, function, NAME
    start: int  # 1-based, inclusive (decorators included)
    end: int
    header: str  # the source line that opens it


def elements(source: str) -> list[Element]:
    """Classes, functions (methods as Class.method, nested classes too) and module-level
    assignments of a Python file. A file that does not parse has none."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    lines = source_lines(source)
    out: list[Element] = []

    def first_line(node: ast.AST) -> int:
        decos = getattr(node, "decorator_list", [])
        return min([node.lineno, *(d.lineno for d in decos)])

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                name = prefix + node.name
                out.append(Element(kind, name, first_line(node), node.end_lineno or node.lineno,
                                   lines[node.lineno - 1].rstrip()))
                if isinstance(node, ast.ClassDef):
                    visit(node.body, name + ".")
            elif not prefix and isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        out.append(Element("variable", t.id, node.lineno, node.end_lineno or node.lineno,
                                           lines[node.lineno - 1].rstrip()))
    visit(tree.body, "")
    return out


def render_skeleton(source: str) -> str:
    """One line per element: its line span and its opening line (indentation kept)."""
    els = elements(source)
    if not els:
        return "(no classes or functions found)"
    return "\n".join(f"{e.start:>5}-{e.end:<5}| {e.header}" for e in els)


def spans_for(source: str, locations: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """Line spans of the named locations: ("class"|"function"|"variable", name) or ("line", "N").
    A name matches an element by its qualified name or, failing that, by its last component."""
    els = elements(source)
    n_lines = len(source_lines(source))
    spans = []
    for kind, value in locations:
        if kind == "line":
            try:
                ln = int(value)
            except ValueError:
                continue
            if 1 <= ln <= n_lines:
                spans.append((ln, ln))
            continue
        exact = [e for e in els if e.name == value]
        found = exact or [e for e in els if e.name.split(".")[-1] == value.split(".")[-1]]
        spans += [(e.start, e.end) for e in found]
    return spans


def excerpt(source: str, spans: list[tuple[int, int]], context: int) -> str:
    """The lines of the spans, widened by `context` lines each side and merged, verbatim (so edits
    can quote them); gaps between excerpts shown as '...'."""
    lines = source_lines(source)
    wide = sorted((max(1, a - context), min(len(lines), b + context)) for a, b in spans)
    merged: list[list[int]] = []
    for a, b in wide:
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    parts = ["\n".join(lines[a - 1:b]) for a, b in merged]
    head = "...\n" if merged and merged[0][0] > 1 else ""
    tail = "\n..." if merged and merged[-1][1] < len(lines) else ""
    return head + "\n...\n".join(parts) + tail
