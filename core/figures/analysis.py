"""Figures and tables of the analysis: slices, worst slices, modality usage, EMAP, ground truth.

Like :mod:`core.figures.evaluation`, every function takes an
:class:`~core.evaluate.EvaluationReport` (or its checkpoint results) and computes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.evaluate import CheckpointEvaluation, EvaluationReport, Interval
from core.figures.theme import PALETTE, color_for, styled

Results = EvaluationReport | Sequence[CheckpointEvaluation]


def _analysed(results: Results) -> list[CheckpointEvaluation]:
    items = results.checkpoints if isinstance(results, EvaluationReport) else list(results)
    return [r for r in items if r.analysis is not None]


def _ci(interval: Interval) -> str:
    if interval.point is None:
        return "–"
    if interval.low is None:
        return f"{interval.point:.3f}"
    return f"{interval.point:.3f} ({interval.low:.2f}–{interval.high:.2f})"


def slice_columns(results: Results) -> list[str]:
    """The sliced columns, in the order the analysis found them."""
    return list(dict.fromkeys(s.column for r in _analysed(results) for s in r.analysis.slices))


def slice_figure(results: Results, column: str) -> go.Figure:
    """Accuracy with its 95% interval on every value of ``column``, one bar per checkpoint."""
    items = _analysed(results)
    names = [r.name for r in items]
    fig = go.Figure()
    for r in items:
        slices = [s for s in r.analysis.slices if s.column == column]
        fig.add_bar(
            x=[s.value for s in slices],
            y=[s.accuracy.point for s in slices],
            name=r.name,
            marker_color=color_for(r.name, names),
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [(s.accuracy.high or s.accuracy.point) - s.accuracy.point for s in slices],
                "arrayminus": [s.accuracy.point - (s.accuracy.low or s.accuracy.point) for s in slices],
                "color": "#374151",
                "thickness": 1,
            },
            customdata=[s.support for s in slices],
            hovertemplate=f"{r.name}<br>{column} = %{{x}}<br>accuracy %{{y:.3f}} (%{{customdata}} rows)<extra></extra>",
        )
    fig.update_layout(barmode="group", yaxis={"title": "accuracy", "range": [0, 1.05]}, xaxis_title=column)
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0})
    return styled(fig, f"Accuracy by {column}, with 95% CI", height=420)


def slice_table(result: CheckpointEvaluation, column: str | None = None) -> pd.DataFrame:
    """One row per slice of one checkpoint (optionally of one column): support, metrics with CI, gap."""
    rows = [
        {
            "Slice": s.label,
            "Rows": s.support,
            "Accuracy (95% CI)": _ci(s.accuracy),
            "Macro F1 (95% CI)": _ci(s.f1_macro),
            "ROC AUC (95% CI)": _ci(s.roc_auc_macro),
            "Gap to overall": round(s.gap, 3),
            "EMAP accuracy": None if s.emap_accuracy is None else round(s.emap_accuracy, 3),
        }
        for s in (result.analysis.slices if result.analysis else [])
        if column is None or s.column == column
    ]
    return pd.DataFrame(rows)


def worst_slices_table(result: CheckpointEvaluation) -> pd.DataFrame:
    """The checkpoint's significantly worse slices, largest gap first."""
    rows = [
        {
            "Slice": f.label,
            "Rows": f.support,
            "Accuracy": round(f.accuracy, 3),
            "Elsewhere": round(f.rest_accuracy, 3),
            "Gap to overall": round(f.gap, 3),
            "p (Fisher)": f"{f.p_value:.2g}",
            "p (Holm)": f"{f.q_value:.2g}",
        }
        for f in (result.analysis.worst_slices if result.analysis else [])
    ]
    return pd.DataFrame(rows)


def emap_figure(results: Results) -> go.Figure:
    """Each checkpoint's accuracy next to its best additive projection's (EMAP), on the same rows."""
    items = [r for r in _analysed(results) if r.analysis.emap is not None]
    fig = go.Figure()
    names = [r.name for r in items]
    fig.add_bar(x=names, y=[r.analysis.emap.accuracy for r in items], name="model", marker_color=PALETTE[0])
    fig.add_bar(
        x=names,
        y=[r.analysis.emap.emap_accuracy for r in items],
        name="additive projection (EMAP)",
        marker_color="#9CA3AF",
        text=[f"{100 * max(0.0, r.analysis.emap.interaction_share):.0f}% from interactions" for r in items],
        textposition="outside",
    )
    fig.update_layout(barmode="group", yaxis={"title": "accuracy", "range": [0, 1.12]})
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0})
    return styled(fig, "How much accuracy comes from cross-modal interactions (EMAP)", height=400)


def usage_figure(results: Results, slice_label: str | None = None) -> go.Figure:
    """Mean absolute modality Shapley values (left) and interaction indices (right) per checkpoint,
    over the split or over one slice (``slice_label``, e.g. ``information = synergy``)."""
    items = _analysed(results)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Modality (mean |Shapley|)", "Pair (mean |interaction|)"))
    for r in items:
        usage = r.analysis.usage if slice_label is None else r.analysis.usage_by_slice.get(slice_label)
        if usage is None or usage.rows == 0:
            continue
        color = color_for(r.name, [x.name for x in items])
        fig.add_bar(x=list(usage.mean_abs_shapley), y=list(usage.mean_abs_shapley.values()), name=r.name,
                    marker_color=color, legendgroup=r.name, row=1, col=1)  # fmt: skip
        fig.add_bar(x=list(usage.mean_abs_interaction), y=list(usage.mean_abs_interaction.values()), name=r.name,
                    marker_color=color, legendgroup=r.name, showlegend=False, row=1, col=2)  # fmt: skip
    fig.update_layout(barmode="group", legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0})
    fig.update_yaxes(title_text="probability of the true class", row=1, col=1)
    where = "the split" if slice_label is None else slice_label
    return styled(fig, f"How each checkpoint uses its modalities ({where})", height=420)


def usage_table(results: Results) -> pd.DataFrame:
    """Mean modality Shapley values (signed) per checkpoint and modality."""
    rows = {r.name: {m: round(v, 4) for m, v in r.analysis.usage.mean_shapley.items()} for r in _analysed(results)}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "Mean Shapley value"
    return frame


def ground_truth_table(results: Results) -> pd.DataFrame:
    """How often each checkpoint's modality Shapley values agree with the dataset's record."""
    rows = {}
    for r in _analysed(results):
        truth = r.analysis.ground_truth
        if truth is None:
            continue

        def rate(value: float | None) -> str:
            return "–" if value is None else f"{100 * value:.1f}%"

        rows[r.name] = {
            "Clean over corrupted/missing": f"{rate(truth.credit_rate)} of {truth.comparisons}",
            "… corrupted": rate(truth.by_state.get("corrupted", {}).get("rate")),
            "… missing": rate(truth.by_state.get("missing", {}).get("rate")),
            "Informative modality first": f"{rate(truth.informative_rate)} of {truth.informative_comparisons}",
            "Label-showing modality over a misleading one": f"{rate(truth.conflict_rate)} of {truth.conflict_comparisons}",
            "Synergy rows led by an interaction": f"{rate(truth.synergy_interaction_rate)} of {truth.synergy_rows}",
            "Other rows led by an interaction": rate(truth.other_interaction_rate),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "Checkpoint"
    return frame


def ranking_table(report: EvaluationReport) -> pd.DataFrame:
    """The verdict's ranking: accuracy with its interval and the share owed to interactions."""
    if report.verdict is None:
        return pd.DataFrame()
    rows = [
        {
            "Rank": i + 1,
            "Checkpoint": r.name,
            "Kind": r.kind,
            "Accuracy (95% CI)": _ci(r.accuracy),
            "From interactions (EMAP)": "–" if r.interaction_share is None else f"{100 * max(0.0, r.interaction_share):.0f}%",
        }
        for i, r in enumerate(report.verdict.ranking)
    ]
    return pd.DataFrame(rows)


def sharing_table(report: EvaluationReport) -> pd.DataFrame:
    """Multi-task checkpoints against their single-task copies on the report's task."""
    from core.evaluate.sharing import sharing_comparisons

    rows = [
        {
            "Strategy": c.strategy,
            f"Every task ({c.task} accuracy)": _ci(c.shared),
            f"{c.task} alone": _ci(c.alone),
            "Difference (95% CI)": f"{c.difference.point:+.3f}"
            + (f" ({c.difference.low:+.3f} to {c.difference.high:+.3f})" if c.difference.low is not None else ""),
            "McNemar p": f"{c.p:.2g}",
        }
        for c in sharing_comparisons(report, resamples=report.checkpoints[0].options.bootstrap or 1000)
    ]
    return pd.DataFrame(rows)
