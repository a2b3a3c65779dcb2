"""Package exports imported on first use (PEP 562), so importing a light part of a package
does not import its heavy parts.

The dashboard's first page needs ``core.train.runs`` and ``core.evaluate.results``; their
packages' other modules pull in scikit-learn, SciPy, Captum and SHAP (3 s of a 2-core
server's start). A package lists what it exports and where each name lives; a name is
imported when something first reads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, where: dict[str, list[str]]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``'s ``__init__``: ``where`` maps each of its
    modules (relative name, e.g. ``"bootstrap"``; ``"core.errors"`` for an absolute one) to the
    names it exports."""
    home = {name: module for module, names in where.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module if "." in module else f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(home)

    return __getattr__, __dir__
