"""Figures summarising a dataset and the checkpoints trained on it (from cards, no evaluation)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from core.card import CheckpointInfo
from core.figures.theme import PALETTE, modality_bars, styled

SPLIT_COLORS = {"train": PALETTE[0], "val": PALETTE[1], "test": PALETTE[2]}


def class_balance_figure(counts_by_split: dict[str, dict[str, int]]) -> go.Figure:
    """Stacked bars: records per class, one colour per split.

    Args:
        counts_by_split: split -> class -> count (``Dataset.class_counts(split)``).
    """
    fig = go.Figure()
    for split, counts in counts_by_split.items():
        fig.add_trace(
            go.Bar(
                x=list(counts),
                y=list(counts.values()),
                name=split,
                marker_color=SPLIT_COLORS.get(split, PALETTE[3]),
                hovertemplate=f"{split} · %{{x}}: %{{y}}<extra></extra>",
            )
        )
    fig.update_layout(barmode="stack", xaxis_title="class", yaxis_title="records", xaxis={"type": "category"})
    return styled(fig, "Class balance", height=340)


def modality_coverage_figure(coverage: dict[str, float]) -> go.Figure:
    """Horizontal bars: share of records that have each modality (``Dataset.modality_coverage()``)."""
    fig = go.Figure(modality_bars(coverage, "{:.0%}", ".1%"))
    fig.update_layout(xaxis={"range": [0, 1], "tickformat": ".0%", "title": "records with the modality"})
    return styled(fig, "Modality coverage", height=240)


def card_metric_figure(infos: Sequence[CheckpointInfo], metric: str = "test_accuracy") -> go.Figure:
    """One bar per checkpoint of the accuracy recorded in its card at training time.

    Args:
        infos: checkpoints (unreadable ones and those without the metric are skipped).
        metric: ``"test_accuracy"`` or ``"val_accuracy"``.
    """
    rows = sorted(
        ((i.name, getattr(i, metric), i.kind) for i in infos if i.error is None and getattr(i, metric) is not None),
        key=lambda row: -row[1],
    )
    fig = go.Figure(
        go.Bar(
            x=[r[0] for r in rows],
            y=[r[1] for r in rows],
            marker_color=[PALETTE[0] if r[2] == "fusion" else PALETTE[8] for r in rows],
            text=[f"{r[1]:.3f}" for r in rows],
            textposition="outside",
            hovertemplate="%{x}: %{y:.3f}<extra></extra>",
        )
    )
    label = metric.replace("_", " ")
    top = max((r[1] for r in rows), default=1.0)
    fig.update_layout(yaxis={"title": label, "range": [0, min(1.0, top) * 1.12]}, xaxis={"type": "category"})
    return styled(fig, f"{label.capitalize()} by strategy (from checkpoint cards; grey: unimodal baselines)", height=360)
