"""Benchmarks (``python -m bench [section ...] --json out.json``): measured figures, side by side in one run.

Each section is a module of this package exposing ``run(options: dict) -> dict``. The
report records the device, versions and settings so that ratios can be compared across
runs; absolute times only mean something on the recorded device.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import platform
import time
import traceback
from typing import Any

SECTIONS: tuple[str, ...] = (
    "encode", "predict", "train", "evaluate", "explain", "reliability", "dashboard", "load", "explore",
    "compress", "augment", "imbalance", "scale",
)  # fmt: skip
"""Every section, in the order ``all`` runs them (cheap and foundational first)."""


def environment() -> dict[str, Any]:
    """Device, library versions and CPU threads the figures were measured with."""
    import numpy
    import torch

    from core.device import describe_device, pick_device

    device = pick_device()
    return {
        "device": describe_device(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def run_sections(names: list[str], options: dict[str, Any] | None = None, log=print) -> dict[str, Any]:
    """Run the named sections (``all`` = every section) and return one JSON-ready report.

    A section that fails is reported with its error rather than aborting the others.
    """
    options = options or {}
    wanted = list(SECTIONS) if not names or "all" in names else names
    unknown = [n for n in wanted if n not in SECTIONS]
    if unknown:
        raise ValueError(f"Unknown benchmark section(s) {', '.join(unknown)}; choose from all, {', '.join(SECTIONS)}.")
    report: dict[str, Any] = {"environment": environment(), "sections": {}}
    for name in wanted:
        log(f"bench: {name} ...")
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            result = module.run(dict(options))
            report["sections"][name] = {"ok": True, "seconds": round(time.perf_counter() - start, 2), **result}
        except Exception as err:  # one broken section must not hide the others' figures
            report["sections"][name] = {
                "ok": False,
                "seconds": round(time.perf_counter() - start, 2),
                "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(limit=5),
            }
        log(f"bench: {name} done in {report['sections'][name]['seconds']} s")
    return report
