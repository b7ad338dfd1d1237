"""The report's JSON Schemas (committed under reports/schema/) and validation that names the field.

A report carries `schema_version`. This m1bench writes SCHEMA_VERSION and reads every version in
MIGRATIONS (each step lifts a document one version up) plus the current one; anything else fails
with a message naming the version found and the versions readable.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from m1bench.harness.core.files import InputError

SCHEMA_VERSION = 2

# from_version -> function lifting a report of that version to from_version + 1. Version 2 added the
# optional per-suite and per-sample `compute` sections: a version-1 report is a valid version 2 as is.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: dict}


class ReportError(InputError):
    """A report that cannot be read: bad JSON, unsupported schema version, or a field that is wrong."""


def schema_dir() -> Path:
    return Path(str(resources.files("m1bench.reports") / "schema"))


@lru_cache(maxsize=None)
def _validator(name: str):
    from jsonschema import Draft202012Validator

    path = schema_dir() / name
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def field_path(path) -> str:
    """jsonschema's absolute path as `suites.aime2024.metrics[0].ci95`."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _best_error(errors):
    """The most specific error: the deepest path first (an error inside `oneOf` says more than the
    `oneOf` failure that wraps it)."""
    from jsonschema.exceptions import best_match

    return best_match(errors, key=lambda e: (len(e.absolute_path), -len(e.context)))


def check(doc: Any, schema_name: str, where: str) -> None:
    """Raise ReportError naming the first wrong field of `doc` (and how many other problems there are)."""
    errors = list(_validator(schema_name).iter_errors(doc))
    if not errors:
        return
    err = _best_error(errors)
    while err.context:  # descend into oneOf/anyOf to the branch that matched the value's type best
        err = _best_error(err.context)
    more = f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})" if len(errors) > 1 else ""
    raise ReportError(f"{where}: field {field_path(err.absolute_path)}: {err.message}{more}")


def check_report(doc: Any, where: str = "report.json") -> None:
    check(doc, f"report.v{SCHEMA_VERSION}.schema.json", where)


def check_sample(record: Any, where: str) -> None:
    check(record, f"sample.v{SCHEMA_VERSION}.schema.json", where)


def readable_versions() -> list[int]:
    return sorted({*MIGRATIONS, SCHEMA_VERSION})


def upgrade(doc: Any, where: str) -> dict[str, Any]:
    """Lift a parsed report to SCHEMA_VERSION (or fail naming the versions), then validate it."""
    if not isinstance(doc, dict):
        raise ReportError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ReportError(f"{where}: field schema_version: expected an integer schema version, got {version!r} "
                          f"(this m1bench reads report schema versions {_names(readable_versions())})")
    if version > SCHEMA_VERSION:
        raise ReportError(f"{where}: report schema version {version} is newer than this m1bench reads "
                          f"({_names(readable_versions())}); upgrade m1bench to read it")
    if version != SCHEMA_VERSION and version not in MIGRATIONS:
        raise ReportError(f"{where}: report schema version {version} is no longer readable; this m1bench reads "
                          f"report schema versions {_names(readable_versions())}")
    while version < SCHEMA_VERSION:
        doc = MIGRATIONS[version](doc)
        version += 1
        doc["schema_version"] = version
    check_report(doc, where)
    return doc


def _names(versions: list[int]) -> str:
    return ", ".join(str(v) for v in versions)
