"""Live training curves drawn from a run's ``epoch`` events (see :mod:`core.runs`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.theme import color_for, styled


def training_curves_figure(epochs: Sequence[dict[str, Any]]) -> go.Figure:
    """Loss (train solid, validation dashed) and validation accuracy per epoch, one colour per model."""
    models = list(dict.fromkeys(e["model"] for e in epochs))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Validation accuracy"), horizontal_spacing=0.1)
    for model in models:
        rows = [e for e in epochs if e["model"] == model]
        x = [e["epoch"] for e in rows]
        color = color_for(model, models)
        fig.add_trace(go.Scatter(x=x, y=[e.get("train_loss") for e in rows], name=f"{model} train", mode="lines",
                                 line={"color": color}, legendgroup=model), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[e.get("val_loss") for e in rows], name=f"{model} val", mode="lines",
                                 line={"color": color, "dash": "dash"}, legendgroup=model), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[e.get("val_accuracy") for e in rows], name=model, mode="lines+markers",
                                 line={"color": color}, legendgroup=model, showlegend=False), row=1, col=2)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    return styled(fig, None, height=360)
