"""One look for every figure: the same template, palette and strategy colours everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

PALETTE = ["#4F46E5", "#059669", "#D97706", "#DC2626", "#0891B2", "#7C3AED", "#DB2777", "#65A30D", "#475569", "#EA580C"]
MODALITY_COLORS = {"image": "#0891B2", "text": "#D97706", "audio": "#7C3AED"}
HEATMAP_SCALE = "RdBu_r"  # diverging: negative attribution blue, positive red

TEMPLATE_NAME = "fusion"
pio.templates[TEMPLATE_NAME] = go.layout.Template(
    layout=go.Layout(
        font={"family": "Inter, Segoe UI, Helvetica, Arial, sans-serif", "size": 13, "color": "#1F2937"},
        colorway=PALETTE,
        paper_bgcolor="white",
        plot_bgcolor="white",
        margin={"l": 50, "r": 20, "t": 50, "b": 45},
        xaxis={"gridcolor": "#E5E7EB", "zerolinecolor": "#D1D5DB", "linecolor": "#9CA3AF"},
        yaxis={"gridcolor": "#E5E7EB", "zerolinecolor": "#D1D5DB", "linecolor": "#9CA3AF"},
        legend={"bgcolor": "rgba(255,255,255,0.8)"},
        hoverlabel={"font": {"size": 12}},
    )
)


def color_for(name: str, names: list[str]) -> str:
    """Stable colour of a checkpoint/strategy: its position in the sorted list of compared names."""
    ordered = sorted(names)
    return PALETTE[ordered.index(name) % len(PALETTE)] if name in ordered else PALETTE[0]


def styled(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    """Apply the project template (and optional title/height) to ``fig`` and return it."""
    fig.update_layout(template=TEMPLATE_NAME)
    if title is not None:
        fig.update_layout(title={"text": title, "x": 0.0, "xanchor": "left"})
    if height is not None:
        fig.update_layout(height=height)
    return fig


def modality_bars(values: dict[str, float], text: str, hover: str) -> go.Bar:
    """Horizontal bars, one per modality in its colour; ``text`` formats each bar's label
    (e.g. ``"{:+.3f}"``), ``hover`` is the plotly hover format of the value (e.g. ``"+.4f"``)."""
    names = list(values)
    return go.Bar(
        x=[values[m] for m in names],
        y=names,
        orientation="h",
        marker_color=[MODALITY_COLORS.get(m, PALETTE[0]) for m in names],
        text=[text.format(values[m]) for m in names],
        textposition="auto",
        hovertemplate=f"%{{y}}: %{{x:{hover}}}<extra></extra>",
    )


def labelled_bar_range(values: Sequence[float], room: float = 0.5) -> list[float]:
    """An axis range holding zero and every value, with ``room`` (a fraction of the span) beyond
    the bars' ends for labels drawn outside them: inside a short bar plotly turns a label on its
    side or cuts it."""
    low, high = min(0.0, *values), max(0.0, *values)
    pad = room * ((high - low) or 1.0)
    return [low - pad if low < 0 else 0.0, high + pad if high > 0 or low == 0 else 0.0]


def symmetric_range(values: np.ndarray) -> float:
    """The largest absolute value (1 when there is none): the bound of a scale centred on zero."""
    limit = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    return limit if limit > 0 else 1.0


def diverging_heatmap(z, x, y, **extra) -> go.Heatmap:
    """A heatmap of signed values on the diverging scale, centred on zero (red: for, blue: against)."""
    limit = symmetric_range(np.asarray(z, dtype=float))
    return go.Heatmap(z=z, x=x, y=y, colorscale=HEATMAP_SCALE, zmin=-limit, zmax=limit, **extra)
