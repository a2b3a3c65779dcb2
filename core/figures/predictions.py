"""Figures of one sample's predicted class probabilities, for several checkpoints side by side."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.figures.theme import color_for, styled


def probability_figure(probabilities: dict[str, np.ndarray], classes: list[str], highlight: list[str] | None = None) -> go.Figure:
    """Grouped bars: one group per class, one bar per checkpoint.

    Args:
        probabilities: checkpoint name -> ``[C]`` probabilities in ``classes`` order.
        classes: class names.
        highlight: classes to mark (e.g. where the checkpoints' top predictions differ).
    """
    names = list(probabilities)
    fig = go.Figure()
    for name in names:
        fig.add_trace(
            go.Bar(
                x=classes,
                y=np.asarray(probabilities[name], dtype=float),
                name=name,
                marker_color=color_for(name, names),
                hovertemplate=f"{name} · %{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
    for cls in highlight or []:
        fig.add_vrect(
            x0=classes.index(cls) - 0.5,
            x1=classes.index(cls) + 0.5,
            fillcolor="#FDE68A",
            opacity=0.35,
            line_width=0,
            layer="below",
        )
    fig.update_layout(
        barmode="group",
        xaxis={"title": "class", "type": "category"},
        yaxis={"title": "probability", "range": [0, 1.02]},
        legend={"orientation": "h", "y": -0.25},
    )
    return styled(fig, "Class probabilities", height=380)
