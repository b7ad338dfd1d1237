"""Suite registry: name -> Suite class. A suite module registers itself with `@register`."""
from __future__ import annotations

import importlib

from m1bench.suites.base import Suite

SUITES: dict[str, type[Suite]] = {}
_MODULES = ("aime", "livecodebench", "lm_eval_tasks", "openai_mrcr", "mrcr", "tau_bench_suite", "swebench_suite")


def register(cls: type[Suite]) -> type[Suite]:
    if cls.name in SUITES:
        raise ValueError(f"suite {cls.name!r} registered twice")
    SUITES[cls.name] = cls
    return cls


def _load_all() -> None:
    for m in _MODULES:
        importlib.import_module(f"m1bench.suites.{m}")


def get_suite(name: str) -> Suite:
    _load_all()
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; known: {', '.join(sorted(SUITES))}")
    return SUITES[name]()


def suite_names() -> list[str]:
    _load_all()
    return sorted(SUITES)
