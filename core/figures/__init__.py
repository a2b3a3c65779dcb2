"""Plotly figures built from result objects; no computation happens here.

``evaluation`` draws :mod:`core.evaluate` results, ``explanation`` draws
:mod:`core.explain` results; both share the look defined in ``theme``.
"""
