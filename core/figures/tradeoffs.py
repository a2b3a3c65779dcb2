"""Cost against accuracy: where each checkpoint sits, which ones nothing beats, what compression bought."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.evaluate.tradeoffs import COST_AXES, tradeoff_points
from core.figures.evaluation import METRIC_LABELS, Results, _checkpoints
from core.figures.theme import color_for, styled

FRONT_COLOR = "#111827"
LINK_COLOR = "#9CA3AF"


def cost_accuracy_figure(results: Results, metric: str = "accuracy") -> go.Figure:
    """One panel per cost axis (batch-1 latency, size on disk, parameter memory): a point per
    checkpoint at its metric with the bootstrap 95% interval. Checkpoints on the Pareto front of a
    panel (nothing both cheaper and better) are stars joined by a dashed staircase; a dotted line
    joins each compressed checkpoint to its parent."""
    points = tradeoff_points(_checkpoints(results), metric)
    names = [p.name for p in points]
    by_name = {p.name: p for p in points}
    fig = make_subplots(rows=1, cols=len(COST_AXES), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=list(COST_AXES.values()))  # fmt: skip
    for col, axis in enumerate(COST_AXES, start=1):
        placed = [p for p in points if p.costs[axis] is not None]
        front = sorted((p for p in placed if p.on_front.get(axis)), key=lambda p: p.costs[axis])
        if len(front) > 1:
            fig.add_scatter(
                x=[p.costs[axis] for p in front], y=[p.value.point for p in front], mode="lines",
                line={"color": FRONT_COLOR, "dash": "dash", "width": 1, "shape": "hv"}, hoverinfo="skip",
                name="Pareto front", legendgroup="front", showlegend=col == 1, row=1, col=col,
            )  # fmt: skip
        for p in placed:
            parent = by_name.get(p.parent or "")
            if parent is not None and parent.costs[axis] is not None:
                fig.add_scatter(
                    x=[parent.costs[axis], p.costs[axis]], y=[parent.value.point, p.value.point], mode="lines",
                    line={"color": LINK_COLOR, "dash": "dot", "width": 1.5}, hoverinfo="skip",
                    name="compressed from", legendgroup="link", showlegend=False, row=1, col=col,
                )  # fmt: skip
        for p in placed:
            fig.add_scatter(
                x=[p.costs[axis]], y=[p.value.point], mode="markers", name=p.name, legendgroup=p.name,
                showlegend=col == 1, error_y=_error_bar(p.value),
                marker={"size": 15 if p.on_front.get(axis) else 10, "symbol": "star" if p.on_front.get(axis) else "circle",
                        "color": color_for(p.name, names), "line": {"width": 1, "color": FRONT_COLOR}},
                hovertemplate=_hover(p, axis), row=1, col=col,
            )  # fmt: skip
        fig.update_xaxes(title=COST_AXES[axis], row=1, col=col, rangemode="tozero")
    fig.update_yaxes(title=METRIC_LABELS.get(metric, metric), row=1, col=1)
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0, "font": {"size": 11}})
    return styled(fig, f"{METRIC_LABELS.get(metric, metric)} against cost (stars: Pareto front; dotted: compressed from)",
                  height=460)  # fmt: skip


def _error_bar(value) -> dict | None:
    if value.low is None or value.high is None or value.point is None:
        return None
    return {"type": "data", "symmetric": False, "array": [value.high - value.point],
            "arrayminus": [value.point - value.low], "thickness": 1.2, "color": "#374151"}  # fmt: skip


def _hover(point, axis: str) -> str:
    lines = [f"<b>{point.name}</b>", f"{COST_AXES[axis]}: %{{x:.3g}}", "value %{y:.3f}"]
    if point.value.low is not None:
        lines[-1] += f" ({point.value.low:.3f}–{point.value.high:.3f})"
    if point.compression:
        lines.append(f"{point.compression} of {point.parent or point.parent_outside}")
    if point.on_front.get(axis):
        lines.append("on the Pareto front")
    return "<br>".join(lines) + "<extra></extra>"
