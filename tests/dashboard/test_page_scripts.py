"""Page scripts hold no bare expressions: Streamlit's "magic" would draw them on the page."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT

SCRIPTS = sorted([*(PROJECT_ROOT / "pages").glob("*.py"), PROJECT_ROOT / "dashboard" / "app.py"])
OK = (ast.Call, ast.Await, ast.Yield, ast.YieldFrom)
"""Expressions magic leaves alone: calls (st.title(...)) and the like."""


def bare_expressions(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, source) of every expression statement magic would draw; the first string of a
    module, class or function is its docstring and is not drawn."""
    found = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if not isinstance(body, list):
                continue
            for index, statement in enumerate(body):
                if not isinstance(statement, ast.Expr) or isinstance(statement.value, OK):
                    continue
                docstring = (
                    index == 0 and field == "body"
                    and isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                    and isinstance(statement.value, ast.Constant) and isinstance(statement.value.value, str)
                )  # fmt: skip
                if not docstring:
                    found.append((statement.lineno, ast.unparse(statement)[:80]))
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_page_draws_a_stray_expression(script: Path):
    assert bare_expressions(ast.parse(script.read_text(encoding="utf-8"))) == []


def test_the_check_sees_a_constant_documented_like_a_module_attribute():
    """What happened on Compare: a docstring under a constant was drawn above the page's title."""
    tree = ast.parse('"""Page."""\nX = 1\n"""What X is."""\ndef f():\n    """Doc."""\n    y\n')
    assert bare_expressions(tree) == [(3, "'What X is.'"), (6, "y")]
