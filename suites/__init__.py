"""Suite registry: name -> Suite class. Each family is a package here (aime/, mrcr/, ...) whose
`__init__` imports the modules that register their suites with `@register`; families are found
by listing this package, so a new folder needs no edit here."""
from __future__ import annotations

import importlib
import pkgutil

from m1bench.suites.base import Suite

SUITES: dict[str, type[Suite]] = {}


def register(cls: type[Suite]) -> type[Suite]:
    if cls.name in SUITES:
        raise ValueError(f"suite {cls.name!r} registered twice")
    SUITES[cls.name] = cls
    return cls


def _load_all() -> None:
    for family in pkgutil.iter_modules(__path__):
        if family.ispkg:
            importlib.import_module(f"{__name__}.{family.name}")


def get_suite(name: str) -> Suite:
    _load_all()
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; known: {', '.join(sorted(SUITES))}")
    return SUITES[name]()


def suite_names() -> list[str]:
    _load_all()
    return sorted(SUITES)
