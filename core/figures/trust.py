"""Figures and tables of the trust checks: attention maps, agreement between methods,
faithfulness, sanity checks, stability and the per-modality ranking of methods.

Like every module here, each function only draws or tabulates what a result holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.explain.attention_maps import AttentionMaps
from core.explain.result import Explanation
from core.explain.trust import TrustReport
from core.figures.theme import styled

ATTENTION_SCALE = "Blues"


def attention_figure(maps: AttentionMaps) -> go.Figure:
    """One heatmap per layer and head (rows: layers; last column: the mean over heads):
    row = the attending token, column = the token attended to; each row sums to 1."""
    layers, heads = maps.weights.shape[:2]
    titles = [
        f"layer {layer + 1} · {'mean of heads' if head == heads else f'head {head + 1}'}"
        for layer in range(layers)
        for head in range(heads + 1)
    ]
    fig = make_subplots(
        rows=layers, cols=heads + 1, subplot_titles=titles, horizontal_spacing=0.03, vertical_spacing=0.12
    )
    for layer in range(layers):
        panels = [*maps.weights[layer], maps.weights[layer].mean(axis=0)]
        for head, weights in enumerate(panels):
            fig.add_trace(
                go.Heatmap(
                    z=weights,
                    x=maps.tokens,
                    y=maps.tokens,
                    zmin=0.0,
                    zmax=1.0,
                    colorscale=ATTENTION_SCALE,
                    showscale=layer == 0 and head == 0,
                    colorbar={"title": "weight"},
                    text=[[f"{v:.2f}" for v in row] for row in weights],
                    texttemplate="%{text}",
                    hovertemplate="%{y} attends to %{x}: %{z:.3f}<extra></extra>",
                ),
                row=layer + 1,
                col=head + 1,
            )
    fig.update_yaxes(autorange="reversed")
    for col in range(2, heads + 2):
        fig.update_yaxes(showticklabels=False, col=col)
    fig.update_annotations(font_size=11)
    rows = f"{maps.rows} samples" if maps.rows > 1 else "this sample"
    absent = [m for m, share in maps.present.items() if share < 1.0]
    note = f" (absent modalities attend as their learned missing embedding: {', '.join(absent)})" if absent else ""
    return styled(fig, f"Who attends to whom, {rows}{note}", height=80 + 230 * layers)


def agreement_figure(results: dict[str, Explanation], labels: dict[str, str] | None = None) -> go.Figure:
    """Per modality, the Spearman correlation between every pair of methods' segment scores
    (from ``metadata["agreement"]``, which :func:`core.explain.explain` attaches). Every panel
    lists the same methods; "–" where a method does not score that modality."""
    labels = labels or {}
    names = [name for name, r in results.items() if r.segment_scores]
    modalities = sorted({m for name in names for m in results[name].segment_scores})
    shown = [labels.get(n, n) for n in names]
    fig = make_subplots(
        rows=1, cols=max(len(modalities), 1), subplot_titles=modalities, shared_yaxes=True, horizontal_spacing=0.04
    )
    for col, modality in enumerate(modalities, start=1):
        matrix = np.full((len(names), len(names)), np.nan)
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if modality not in results[a].segment_scores or modality not in results[b].segment_scores:
                    continue
                matrix[i, j] = (
                    1.0 if a == b else results[a].metadata.get("agreement", {}).get(b, {}).get(modality, np.nan)
                )
        fig.add_trace(
            go.Heatmap(
                z=matrix,
                x=shown,
                y=shown,
                zmin=-1.0,
                zmax=1.0,
                colorscale="RdBu_r",
                showscale=col == 1,
                colorbar={"title": "Spearman"},
                text=[["–" if np.isnan(v) else f"{v:+.2f}" for v in row] for row in matrix],
                texttemplate="%{text}",
                hovertemplate="%{y} vs %{x}: %{z:+.2f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_yaxes(autorange="reversed")
    return styled(fig, "Agreement between methods (rank correlation of segment scores)", height=420)


def faithfulness_table(results: dict[str, Explanation], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Deletion and insertion AUC of each result with curves, next to a random order's."""
    labels = labels or {}
    rows = []
    for name, r in results.items():
        if r.faithfulness is None:
            continue
        f = r.faithfulness
        rows.append(
            {
                "method": labels.get(name, name),
                "deletion AUC (lower is better)": f.deletion_auc,
                "random deletion": f.random_deletion_auc,
                "insertion AUC (higher is better)": f.insertion_auc,
                "random insertion": f.random_insertion_auc,
                "beats random": bool(
                    f.deletion_auc < f.random_deletion_auc and f.insertion_auc > f.random_insertion_auc
                ),
            }
        )
    return pd.DataFrame(rows)


def _verdict(passed: bool | None, value: float) -> str:
    if passed is None or not np.isfinite(value):
        return "not judged"
    return f"{'pass' if passed else 'FAIL'} (ρ {value:+.2f})"


def sanity_table(report: TrustReport) -> pd.DataFrame:
    """One row per method and modality: both randomisation checks (pass/fail with the rank
    correlation), max-sensitivity, seed variation, faithfulness gains, rank and time."""
    rows = []
    for method in report.methods.values():
        label = f"{method.label} (control)" if method.control else method.label
        if not method.modalities:
            rows.append(
                {"method": label, "modality": "–", "model randomisation": method.not_applicable or "not applicable"}
            )
            continue
        for modality, s in sorted(method.modalities.items()):
            rows.append(
                {
                    "method": label,
                    "modality": modality,
                    "rank": s.rank,
                    "model randomisation": _verdict(s.model_randomisation_passed, s.model_randomisation),
                    "data randomisation": _verdict(s.data_randomisation_passed, s.data_randomisation),
                    "max-sensitivity": s.max_sensitivity,
                    "seed ρ": "deterministic" if s.seed_rank_correlation is None else f"{s.seed_rank_correlation:.2f}",
                    "sign flips across seeds": "–" if s.seed_sign_flips is None else f"{s.seed_sign_flips:.0%}",
                    "deletion gain": s.deletion_gain,
                    "insertion gain": s.insertion_gain,
                    "s / explanation": method.seconds_per_explanation,
                }
            )
    return pd.DataFrame(rows)


def ranking_table(report: TrustReport) -> pd.DataFrame:
    """Per modality, the methods from most to least believable."""
    labels = {name: m.label for name, m in report.methods.items()}
    depth = max((len(v) for v in report.ranking.values()), default=0)
    return pd.DataFrame(
        [
            {"modality": modality, **{f"#{i + 1}": labels[n] for i, n in enumerate(names)}}
            for modality, names in sorted(report.ranking.items())
        ],
        columns=["modality", *[f"#{i + 1}" for i in range(depth)]],
    ).fillna("–")


def recommendation_text(report: TrustReport) -> str:
    """One markdown line: per modality, the method to believe on this checkpoint."""
    labels = {name: m.label for name, m in report.methods.items()}
    parts = [
        f"**{modality}**: {labels.get(name, name)}" for modality, name in sorted(report.recommendation.items()) if name
    ]
    return "Most believable on this checkpoint: " + " · ".join(parts) if parts else "No method could be ranked."
