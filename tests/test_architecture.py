"""The house rules, checked: arrows point one way, modules stay small, settings and errors in one place."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT

CORE = PROJECT_ROOT / "core"
LAYERS = {"core": CORE, "dashboard": PROJECT_ROOT / "dashboard", "pages": PROJECT_ROOT / "pages", "bench": PROJECT_ROOT / "bench"}
MAX_LINES = 600


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "layer, forbidden",
    [("core", {"streamlit", "dashboard", "pages", "bench", "tests"}), ("dashboard", {"pages", "bench", "tests"}), ("pages", {"bench", "tests"})],
)
def test_arrows_point_one_way(layer, forbidden):
    offenders = {
        f"{path.relative_to(PROJECT_ROOT)}: {name}"
        for path in python_files(LAYERS[layer])
        for name in imported_modules(path)
        if name.split(".")[0] in forbidden
    }
    assert not offenders


def test_no_core_module_is_over_600_lines():
    sizes = {str(p.relative_to(PROJECT_ROOT)): len(p.read_text().splitlines()) for p in python_files(CORE)}
    assert not {name: n for name, n in sizes.items() if n > MAX_LINES}


def test_only_the_settings_module_reads_the_environment():
    readers = []
    for layer in ("core", "dashboard", "pages"):
        for path in python_files(LAYERS[layer]):
            if path == CORE / "settings.py":
                continue
            text = path.read_text()
            if "os.environ" in text or "getenv(" in text:
                readers.append(str(path.relative_to(PROJECT_ROOT)))
    assert not readers


def test_no_tooling_ships_in_the_library():
    names = {p.stem for p in python_files(CORE)}
    assert not {n for n in names if any(word in n for word in ("bench", "fuzz", "crash", "hostile", "server"))}


def test_importing_core_changes_nothing_in_the_process():
    """Every core module imported: the environment and torch's thread count are as before.

    Third-party libraries are imported first (scikit-learn sets ``KMP_*`` defaults when
    imported): what is checked is what core itself does.
    """
    probe = f"""
import importlib, json, os, pkgutil, sys
sys.path.insert(0, {str(PROJECT_ROOT)!r})
import torch, numpy, scipy, sklearn, shap, lime, librosa, skimage, PIL, pandas, plotly, safetensors, transformers
before_env, before_threads = dict(os.environ), torch.get_num_threads()
import core
for module in pkgutil.walk_packages(core.__path__, "core."):
    if module.name != "core.__main__":
        importlib.import_module(module.name)
print(json.dumps({{
    "env_changed": sorted(k for k in set(before_env) | set(os.environ) if before_env.get(k) != os.environ.get(k)),
    "threads": [before_threads, torch.get_num_threads()],
    "streamlit": "streamlit" in sys.modules,
}}))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["env_changed"] == []
    assert result["threads"][0] == result["threads"][1]
    assert not result["streamlit"], "core imported streamlit"


def test_every_error_a_user_can_cause_derives_from_one_base():
    from core import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert all(issubclass(c, errors.FusionError) for c in classes)
    assert not any(issubclass(c, ValueError) for c in classes), "a ValueError would be caught as a user's error"
    defined_elsewhere = [
        f"{path.relative_to(PROJECT_ROOT)}: {node.name}"
        for path in python_files(CORE)
        if path.name != "errors.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and any(getattr(base, "id", getattr(base, "attr", "")).endswith(("Error", "Exception")) for base in node.bases)
    ]
    assert not defined_elsewhere, "every error class lives in core/errors.py"
