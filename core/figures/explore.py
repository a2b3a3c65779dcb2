"""Figures and tables of :mod:`core.explore` results: the embedding map, retrieval and neighbour figures.

Nothing is computed here: a map is drawn from a :class:`~core.explore.Projection` and the
values of one table column per point; retrieval figures from a
:class:`~core.explore.RetrievalReport`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from core.explore.neighbors import AgreementReport
from core.explore.projection import Projection
from core.explore.retrieval_metrics import RetrievalReport
from core.figures.theme import PALETTE, styled

MISSING = "(none)"
MAX_LEGEND = 24
"""Above this many distinct values a categorical colouring folds the rarest into "other" (24 distinct colours)."""
SAMPLE_MARKER = {"symbol": "star", "size": 22, "color": "#111827", "line": {"width": 2, "color": "white"}}


def _hover(ids: Sequence[str], labels: Sequence[str], values: Sequence, name: str) -> list[str]:
    return [f"{i} · label {lab}<br>{name}: {v}" for i, lab, v in zip(ids, labels, values, strict=True)]


def projection_figure(
    projection: Projection,
    labels: Sequence[str],
    values: Sequence,
    color_name: str,
    *,
    placed: Sequence[tuple[str, float, float]] = (),
    height: int = 620,
) -> go.Figure:
    """Scatter of a 2-D map, one point per record (``customdata`` = its id, for selections).

    Args:
        labels: each point's label (hover text).
        values: each point's value of the column it is coloured by: numbers get a colour scale,
            anything else one trace (and legend entry) per value.
        placed: ``(name, x, y)`` of samples placed on the map (drawn as stars).
    """
    coords = np.asarray(projection.coords, dtype=float)
    ids = list(projection.ids)
    fig = go.Figure()
    numeric = len(values) > 0 and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)
    if numeric:
        numbers = np.asarray(values, dtype=float)
        fig.add_trace(
            go.Scattergl(
                x=coords[:, 0],
                y=coords[:, 1],
                mode="markers",
                customdata=ids,
                text=_hover(ids, labels, [f"{v:.3g}" for v in numbers], color_name),
                hovertemplate="%{text}<extra></extra>",
                marker={"size": 6, "color": numbers, "colorscale": "Viridis", "colorbar": {"title": color_name}},
                showlegend=False,
                name=color_name,
            )
        )
    else:
        shown = ["" if v is None else str(v) for v in values]
        shown = [s if s else MISSING for s in shown]
        counts = pd.Series(shown).value_counts()
        keep = set(counts.index[:MAX_LEGEND])
        shown = [s if s in keep else "other" for s in shown]
        order = sorted(set(shown), key=lambda s: (s in (MISSING, "other"), _natural(s)))
        named = [v for v in order if v not in (MISSING, "other")]
        colours = qualitative.D3 if len(named) <= len(qualitative.D3) else qualitative.Dark24
        for n, value in enumerate(order):
            rows = [i for i, s in enumerate(shown) if s == value]
            fig.add_trace(
                go.Scattergl(
                    x=coords[rows, 0],
                    y=coords[rows, 1],
                    mode="markers",
                    name=value,
                    customdata=[ids[i] for i in rows],
                    text=_hover([ids[i] for i in rows], [labels[i] for i in rows], [value] * len(rows), color_name),
                    hovertemplate="%{text}<extra></extra>",
                    marker={"size": 6, "color": colours[n % len(colours)] if value not in (MISSING, "other") else "#9CA3AF"},
                )
            )
    for name, x, y in placed:
        fig.add_trace(
            go.Scatter(
                x=[x], y=[y], mode="markers+text", name=name, text=[name], textposition="top center",
                marker=SAMPLE_MARKER, hovertemplate=f"{name}<extra></extra>",
            )
        )  # fmt: skip
    used = "UMAP" if projection.used == "umap" else "PCA"
    fig.update_layout(
        dragmode="lasso",
        legend={"title": {"text": color_name}, "itemsizing": "constant"},
        xaxis={"title": f"{used} 1", "showticklabels": False, "zeroline": False},
        yaxis={"title": f"{used} 2", "showticklabels": False, "zeroline": False},
    )
    title = f"{projection.space} space of {projection.checkpoint} · {projection.split} · {used} · {len(ids):,} points"
    return styled(fig, title, height=height)


def _natural(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def retrieval_table(report: RetrievalReport) -> pd.DataFrame:
    """One row per direction: each figure with its chance level in brackets."""
    rows = []
    for d in report.directions:
        row = {"direction": d.direction, "queries": d.queries}
        for k in ("1", "5", "10"):
            row[f"R@{k}"] = f"{d.recall[k]:.3f} ({d.recall_chance[k]:.3f})"
        row["median rank"] = f"{d.median_rank:g} ({d.median_rank_chance:g})"
        row[f"P@{d.k}"] = f"{d.precision:.3f} ({d.precision_chance:.3f})"
        row["mAP"] = f"{d.map:.3f} ({d.map_chance:.3f})"
        rows.append(row)
    return pd.DataFrame(rows)


def retrieval_figure(report: RetrievalReport) -> go.Figure:
    """Class-level precision@K and mAP per direction, each beside its chance level."""
    directions = [d.direction for d in report.directions]
    fig = go.Figure()
    k = report.directions[0].k if report.directions else 10
    for name, values, chance, color in (
        (f"P@{k}", [d.precision for d in report.directions], [d.precision_chance for d in report.directions], PALETTE[0]),
        ("mAP", [d.map for d in report.directions], [d.map_chance for d in report.directions], PALETTE[1]),
    ):
        fig.add_trace(go.Bar(x=directions, y=values, name=name, marker_color=color, offsetgroup=name, hovertemplate=f"%{{x}} · {name} %{{y:.3f}}<extra></extra>"))
        fig.add_trace(
            go.Scatter(
                x=directions, y=chance, mode="markers", name=f"{name} by chance", offsetgroup=name,
                marker={"symbol": "line-ew", "size": 34, "line": {"width": 3, "color": "#111827"}},
                hovertemplate=f"%{{x}} · {name} by chance %{{y:.3f}}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(barmode="group", scattermode="group", yaxis={"range": [0, 1], "title": "class level (hit = same label)"}, xaxis={"type": "category"})
    return styled(fig, f"Retrieval on the {report.split} split: class-level precision and mAP (ticks: chance)", height=360)


def agreement_table(report: AgreementReport) -> pd.DataFrame:
    """One row per space: how often a query's nearest neighbours share its label, and chance."""
    return pd.DataFrame(
        [
            {
                "space": s.space,
                "queries": s.queries,
                f"share of {report.k} neighbours with the same label": round(s.agreement, 3),
                f"{report.k}-NN majority accuracy": round(s.majority_accuracy, 3),
                "chance": round(s.chance, 3),
            }
            for s in report.spaces
        ]
    )
