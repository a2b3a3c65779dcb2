"""Figures and tables of :mod:`core.evaluate` results; nothing is computed here.

Every function takes an :class:`~core.evaluate.EvaluationReport` or a list of
:class:`~core.evaluate.CheckpointEvaluation` (so results read back from JSON work
unchanged), colours each checkpoint with :func:`core.figures.theme.color_for`, and is
sized for a ~700 px wide column.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from core.evaluate import CORRUPTIONS, LOWER_IS_BETTER, CheckpointEvaluation, EvaluationReport
from core.figures.theme import MODALITY_COLORS, color_for, styled

Results = EvaluationReport | Sequence[CheckpointEvaluation]

METRIC_LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced acc.",
    "f1_macro": "Macro F1",
    "f1_weighted": "Weighted F1",
    "precision_macro": "Macro precision",
    "recall_macro": "Macro recall",
    "roc_auc_macro": "ROC AUC (macro)",
    "roc_auc_micro": "ROC AUC (micro)",
    "roc_auc": "ROC AUC",
    "average_precision_macro": "Avg. precision (macro)",
    "average_precision_micro": "Avg. precision (micro)",
    "top_2_accuracy": "Top-2 acc.",
    "top_3_accuracy": "Top-3 acc.",
    "log_loss": "Log-loss",
    "brier": "Brier",
    "ece": "ECE",
    "f1_micro": "Micro F1",
    "f1_samples": "Sample F1",
    "hamming_loss": "Hamming loss",
    "exact_match": "Exact match",
}
TABLE_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "roc_auc_macro",
    "average_precision_macro",
    "log_loss",
    "brier",
    "ece",
)


MULTILABEL_TABLE_METRICS = (
    "f1_micro",
    "f1_macro",
    "f1_samples",
    "average_precision_macro",
    "roc_auc_macro",
    "hamming_loss",
    "exact_match",
)


def table_metrics(results: Results) -> tuple[str, ...]:
    """The metrics a table shows: those of a single-label task, or of a multi-label one."""
    items = _checkpoints(results)
    return MULTILABEL_TABLE_METRICS if items and items[0].task_kind == "multi" else TABLE_METRICS


def _checkpoints(results: Results) -> list[CheckpointEvaluation]:
    return list(results.checkpoints if isinstance(results, EvaluationReport) else results)


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _legend_below(fig: go.Figure) -> go.Figure:
    # Nine checkpoint names do not fit beside a 700 px plot; below it they do.
    return fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0, "font": {"size": 11}})


# --------------------------------------------------------------------------- tables


def metrics_table(results: Results, metrics: Sequence[str] | None = None, intervals: bool = True) -> pd.DataFrame:
    """One row per checkpoint. With ``intervals``, cells read ``0.912 (0.88–0.94)`` (bootstrap 95%);
    without, they are floats (sortable in ``st.dataframe``)."""
    rows = {}
    metrics = metrics or table_metrics(results)
    for r in _checkpoints(results):
        row: dict[str, object] = {"Modalities": "+".join(r.modalities), "N": r.metrics.n}
        for metric in metrics:
            value = r.metrics.values.get(metric)
            ci = r.intervals.get(metric)
            if intervals and ci is not None and ci.low is not None:
                row[_label(metric)] = f"{_fmt(value)} ({ci.low:.2f}–{ci.high:.2f})"
            else:
                row[_label(metric)] = _fmt(value) if intervals else value
        rows[r.name] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "Checkpoint"
    return frame


def pairwise_table(report: EvaluationReport) -> pd.DataFrame:
    """McNemar and paired-bootstrap tests, one row per pair of checkpoints."""
    rows = []
    for t in report.pairwise:
        d = t.difference
        rows.append(
            {
                "A": t.a,
                "B": t.b,
                "Acc. A": round(t.accuracy_a, 3),
                "Acc. B": round(t.accuracy_b, 3),
                "A − B (95% CI)": f"{d.point:+.3f}" + (f" ({d.low:+.3f}, {d.high:+.3f})" if d.low is not None else ""),
                "Only A right": t.only_a_correct,
                "Only B right": t.only_b_correct,
                "McNemar p (exact)": f"{t.mcnemar_exact_p:.2g}",
                "Bootstrap p": None if t.bootstrap_p is None else f"{t.bootstrap_p:.3f}",
            }
        )
    return pd.DataFrame(rows)


def cost_table(results: Results) -> pd.DataFrame:
    """Parameters, latency, throughput and peak memory per checkpoint (empty when cost was skipped)."""
    rows = {}
    for r in _checkpoints(results):
        c = r.cost
        if c is None:
            continue
        rows[r.name] = {
            "Compressed from": f"{r.parent} ({r.compression})" if r.compression else "",
            "Size on disk (MB)": None if c.disk_bytes is None else round(c.disk_bytes / 1e6, 3),
            "Parameter memory (MB)": None if c.parameter_bytes is None else round(c.parameter_bytes / 1e6, 3),
            "Parameters": f"{c.parameters:,}",
            "Fusion+head params": f"{c.fusion_parameters:,}",
            "Latency, batch 1 (ms)": round(c.latency_ms_end_to_end, 2),
            f"Throughput, batch {c.large_batch} (/s)": round(c.throughput_end_to_end),
            "Fusion latency (ms)": round(c.latency_ms_fusion, 3),
            "Fusion throughput (/s)": round(c.throughput_fusion),
            "Peak memory (MiB)": None if c.peak_memory_mb is None else round(c.peak_memory_mb, 1),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "Checkpoint"
    return frame


def per_class_recall_table(results: Results) -> pd.DataFrame:
    """Recall of each class (the diagonal of the row-normalised confusion matrix): rows
    checkpoints, columns classes; empty for a multi-label task (it has no confusion matrix)."""
    rows = {}
    for r in _checkpoints(results):
        shares = r.curves.confusion_normalized
        if shares:
            rows[r.name] = {c: shares[i][i] for i, c in enumerate(r.classes)}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "Checkpoint"
    return frame


def missing_modality_table(results: Results, metric: str = "accuracy") -> pd.DataFrame:
    """Rows: kept modalities (all first); columns: checkpoints; empty where a checkpoint lacks them."""
    columns = {}
    for r in _checkpoints(results):
        columns[r.name] = {" + ".join(s.modalities): s.values.get(metric) for s in r.missing_modality}
    frame = pd.DataFrame(columns)
    order = sorted(frame.index, key=lambda k: (-k.count("+"), k))
    frame = frame.loc[order]
    frame.index.name = "Modalities kept"
    return frame


# --------------------------------------------------------------------------- figures


def metric_bars(results: Results, metric: str = "accuracy") -> go.Figure:
    """One bar per checkpoint with its bootstrap 95% interval: the one-glance comparison."""
    items = _checkpoints(results)
    names = [r.name for r in items]
    fig = go.Figure()
    for r in items:
        value = r.metrics.values.get(metric)
        ci = r.intervals.get(metric)
        error = None
        if ci is not None and ci.low is not None and value is not None:
            error = {
                "type": "data",
                "symmetric": False,
                "array": [ci.high - value],
                "arrayminus": [value - ci.low],
                "color": "#374151",
                "thickness": 1.2,
            }
        fig.add_bar(
            x=[r.name], y=[value], name=r.name, marker_color=color_for(r.name, names), error_y=error,
            text=[_fmt(value)], textposition="inside", insidetextanchor="middle", textfont={"color": "white"},
            hovertemplate=f"{r.name}<br>{_label(metric)} %{{y:.3f}}<extra></extra>",
        )  # fmt: skip
    lower_better = " (lower is better)" if metric in LOWER_IS_BETTER else ""
    fig.update_layout(showlegend=False, bargap=0.35, yaxis_title=_label(metric))
    if metric not in LOWER_IS_BETTER:  # scores in [0, 1]: zoom on the range that differs
        values = [r.metrics.values.get(metric) for r in items if r.metrics.values.get(metric) is not None]
        lows = [r.intervals[metric].low for r in items if metric in r.intervals and r.intervals[metric].low is not None]
        floor = min(values + lows, default=0.0)
        fig.update_yaxes(range=[max(0.0, floor - 0.1), 1.0])
    return styled(fig, f"{_label(metric)} by checkpoint{lower_better}, with 95% CI", height=380)


def _curve_figure(results: Results, kind: str, which: str) -> go.Figure:
    items = _checkpoints(results)
    names = [r.name for r in items]
    fig = go.Figure()
    if kind == "roc":
        fig.add_scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            line={"dash": "dot", "color": "#9CA3AF", "width": 1},
            showlegend=False,
            hoverinfo="skip",
        )
    for r in items:
        curves = r.curves.roc if kind == "roc" else r.curves.pr
        curve = curves.get(which)
        if curve is None:
            continue
        area = f" ({curve.area:.3f})" if curve.area is not None else ""
        fig.add_scatter(
            x=curve.x, y=curve.y, mode="lines", name=f"{r.name}{area}",
            line={"color": color_for(r.name, names), "width": 2, "shape": "hv" if kind == "pr" else "linear"},
        )  # fmt: skip
    x_title, y_title = ("False positive rate", "True positive rate") if kind == "roc" else ("Recall", "Precision")
    fig.update_xaxes(title=x_title, range=[0, 1.01], constrain="domain")
    fig.update_yaxes(title=y_title, range=[0, 1.02])
    title = f"{'ROC' if kind == 'roc' else 'Precision–recall'} curve, {which if which in ('micro', 'macro') else 'class ' + which}"
    title += " average" if which in ("micro", "macro") else ""
    return _legend_below(styled(fig, title, height=520))


def roc_figure(results: Results, which: str = "macro") -> go.Figure:
    """Overlaid ROC curves; ``which`` is a class name, ``"micro"`` or ``"macro"``. Legend shows AUC."""
    return _curve_figure(results, "roc", which)


def pr_figure(results: Results, which: str = "macro") -> go.Figure:
    """Overlaid precision–recall curves; ``which`` is a class name, ``"micro"`` or ``"macro"``."""
    return _curve_figure(results, "pr", which)


def curve_choices(results: Results) -> list[str]:
    """Values ``roc_figure``/``pr_figure`` accept for these results: averages first, then classes."""
    classes = dict.fromkeys(c for r in _checkpoints(results) for c in r.curves.roc if c not in ("micro", "macro"))
    return ["macro", "micro", *classes]


def confusion_figure(result: CheckpointEvaluation, normalized: bool = True, height: int = 460) -> go.Figure:
    """Confusion matrix heatmap: rows true class, columns prediction; row shares or counts."""
    z = result.curves.confusion_normalized if normalized else result.curves.confusion
    counts = result.curves.confusion
    text = [
        [f"{c}" if not normalized else (f"{v:.2f}" if v is not None and c else "") for v, c in zip(zr, cr, strict=True)]
        for zr, cr in zip(z, counts, strict=True)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=result.classes, y=result.classes, text=text, texttemplate="%{text}", textfont={"size": 10},
            colorscale="Blues", zmin=0, zmax=1 if normalized else None, showscale=False,
            customdata=counts, hovertemplate="true %{y}, predicted %{x}<br>%{customdata} rows<extra></extra>",
        )
    )  # fmt: skip
    fig.update_xaxes(title="Predicted", type="category", side="bottom", showgrid=False)
    fig.update_yaxes(title="True", type="category", autorange="reversed", showgrid=False, scaleanchor="x")
    return styled(fig, f"{result.name}: confusion ({'row share' if normalized else 'counts'})", height=height)


def reliability_figure(results: Results) -> go.Figure:
    """Reliability diagram: accuracy vs mean confidence per bin, one line per checkpoint; ECE in the legend."""
    items = _checkpoints(results)
    names = [r.name for r in items]
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        line={"dash": "dot", "color": "#9CA3AF", "width": 1},
        name="perfect calibration",
    )
    for r in items:
        bins = r.curves.reliability
        points = [(c, a, n) for c, a, n in zip(bins.confidence, bins.accuracy, bins.count, strict=True) if n]
        if not points:
            continue
        conf, acc, count = zip(*points, strict=True)
        fig.add_scatter(
            x=conf, y=acc, mode="lines+markers", name=f"{r.name} (ECE {_fmt(r.metrics.values.get('ece'))})",
            marker={"size": [6 + 10 * (n / max(count)) ** 0.5 for n in count]}, line={"color": color_for(r.name, names), "width": 1.5},
            customdata=count, hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>%{customdata} rows<extra></extra>",
        )  # fmt: skip
    fig.update_xaxes(title="Mean confidence (top class)", range=[0, 1.02])
    fig.update_yaxes(title="Accuracy", range=[0, 1.02])
    return _legend_below(styled(fig, "Reliability diagram (marker size = rows in bin)", height=520))


def missing_modality_heatmap(results: Results, metric: str = "accuracy") -> go.Figure:
    """Metric when only some modalities are kept: subsets down, checkpoints across."""
    frame = missing_modality_table(results, metric)
    values = frame.to_numpy(dtype=float)
    text = [["" if v != v else f"{v:.2f}" for v in row] for row in values]
    reverse = metric in LOWER_IS_BETTER
    fig = go.Figure(
        go.Heatmap(
            z=values, x=list(frame.columns), y=list(frame.index), text=text, texttemplate="%{text}",
            colorscale="RdYlGn_r" if reverse else "RdYlGn", zmin=None if reverse else 0, zmax=None if reverse else 1,
            colorbar={"title": {"text": _label(metric), "side": "right"}, "thickness": 12},
            hovertemplate="%{x}<br>kept: %{y}<br>" + _label(metric) + " %{z:.3f}<extra></extra>", hoverongaps=False,
        )
    )  # fmt: skip
    fig.update_xaxes(type="category", tickangle=-30, showgrid=False, automargin=True)
    fig.update_yaxes(type="category", autorange="reversed", showgrid=False, automargin=True)
    return styled(fig, f"{_label(metric)} with only some modalities present", height=120 + 42 * len(frame))


def robustness_figure(results: Results, corruption: str, metric: str = "accuracy") -> go.Figure:
    """Metric vs severity of one corruption (severity 0 = clean), one line per checkpoint
    that uses the corrupted modality."""
    items = _checkpoints(results)
    names = [r.name for r in items]
    spec = CORRUPTIONS[corruption]
    fig = go.Figure()
    for r in items:
        sweep = next((s for s in r.corruptions if s.name == corruption), None)
        if sweep is None:
            continue
        fig.add_scatter(
            x=list(range(len(sweep.values))), y=[v.get(metric) for v in sweep.values], mode="lines+markers", name=r.name,
            line={"color": color_for(r.name, names), "width": 2},
        )  # fmt: skip
    fig.update_xaxes(title=spec.parameter, tickvals=list(range(len(spec.levels))), ticktext=list(spec.level_labels))
    fig.update_yaxes(title=_label(metric), range=None if metric in LOWER_IS_BETTER else [0, 1.02])
    return _legend_below(styled(fig, spec.description, height=440))


def robustness_figures(results: Results, metric: str = "accuracy") -> dict[str, go.Figure]:
    """:func:`robustness_figure` for every corruption some checkpoint was swept with."""
    swept = dict.fromkeys(s.name for r in _checkpoints(results) for s in r.corruptions)
    return {name: robustness_figure(results, name, metric) for name in swept}


def robustness_note(results: Results) -> str:
    """How the corruption sweeps were computed, and on which rows when a large split was sampled."""
    note = "Only the corrupted modality is re-encoded; severity 0 is the clean input."
    sampled = [s for r in _checkpoints(results) for s in r.corruptions if s.sampled]
    if sampled:
        first = sampled[0]
        note += (
            f" Each curve is scored on a seeded sample of {first.n_scored:,} of the split's {first.n_rows:,} rows, "
            "the same rows for every checkpoint (`python -m core evaluate --sweep-rows 0` scores every row)."
        )
    return note


def reliance_figure(results: Results) -> go.Figure:
    """Accuracy drop when one modality is shuffled, grouped by checkpoint, coloured by modality."""
    items = _checkpoints(results)
    modalities = sorted({s.modality for r in items for s in r.reliance})
    fig = go.Figure()
    for m in modalities:
        scores = [next((s for s in r.reliance if s.modality == m), None) for r in items]
        fig.add_bar(
            x=[r.name for r in items], y=[s.mean_drop if s else None for s in scores], name=m,
            marker_color=MODALITY_COLORS.get(m), error_y={"type": "data", "array": [s.std_drop if s else 0 for s in scores], "thickness": 1},
            hovertemplate=f"%{{x}}<br>{m} shuffled: accuracy −%{{y:.3f}}<extra></extra>",
        )  # fmt: skip
    fig.update_layout(
        barmode="group",
        bargap=0.25,
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
    )
    fig.update_xaxes(tickangle=-30)
    fig.update_yaxes(title="Accuracy drop when shuffled")
    return styled(fig, "Modality reliance (permutation)", height=420)


__all__ = [
    "confusion_figure",
    "cost_table",
    "curve_choices",
    "metric_bars",
    "metrics_table",
    "missing_modality_heatmap",
    "missing_modality_table",
    "pairwise_table",
    "per_class_recall_table",
    "pr_figure",
    "reliability_figure",
    "reliance_figure",
    "robustness_figure",
    "robustness_figures",
    "robustness_note",
    "roc_figure",
]
