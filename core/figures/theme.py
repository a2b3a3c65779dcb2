"""One look for every figure: the same template, palette and strategy colours everywhere."""

from __future__ import annotations

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
