"""One self-contained HTML file comparing evaluated checkpoints side by side.

plotly.js is inlined once and every figure refers to it, so the file opens offline and
makes no network request. The figures and tables are those of
:mod:`core.figures.evaluation`, the same the dashboard shows.
"""

from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from core.atomic import write_text_atomic
from core.evaluate import EvaluationReport
from core.figures import analysis as analysis_figures
from core.figures import evaluation as figures
from core.figures.tradeoffs import cost_accuracy_figure

CSS = """
body { font-family: Inter, "Segoe UI", Helvetica, Arial, sans-serif; color: #1F2937; margin: 0; background: #F9FAFB; }
main { max-width: 1400px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #E5E7EB; }
p.meta { color: #6B7280; margin: 0 0 8px; font-size: 14px; }
p.note { color: #6B7280; font-size: 13px; margin: 4px 0 12px; max-width: 900px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(640px, 1fr)); gap: 16px; }
.grid.small { grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); }
.card { background: white; border: 1px solid #E5E7EB; border-radius: 8px; padding: 8px; overflow-x: auto; }
table.data { border-collapse: collapse; font-size: 12.5px; background: white; width: 100%; }
table.data th, table.data td { padding: 5px 8px; border-bottom: 1px solid #E5E7EB; text-align: right; white-space: nowrap; }
table.data th:first-child, table.data td:first-child { text-align: left; }
table.data thead th { background: #F3F4F6; font-weight: 600; }
table.data tbody tr:hover { background: #F9FAFB; }
ul.notes { font-size: 13px; color: #92400E; }
.verdict { background: white; border: 1px solid #C7D2FE; border-left: 4px solid #4F46E5; border-radius: 8px; padding: 4px 18px; }
.verdict li { margin: 6px 0; font-size: 14.5px; }
"""


def _figure(fig: go.Figure) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displayModeBar": False, "responsive": True})


def _table(frame: pd.DataFrame, index: bool = True) -> str:
    return frame.to_html(classes="data", border=0, index=index, na_rep="–", escape=True)


def _section(title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return f"<h2>{html.escape(title)}</h2>{note_html}{body}"


def _table_section(title: str, frame: pd.DataFrame, note: str = "", index: bool = True) -> str:
    """A section holding ``frame`` as a table; nothing (an empty string) when the frame is empty."""
    return "" if frame.empty else _section(title, f'<div class="card">{_table(frame, index=index)}</div>', note)


def _cards(figs: list[go.Figure], small: bool = False) -> str:
    cells = "".join(f'<div class="card">{_figure(f)}</div>' for f in figs)
    return f'<div class="grid{" small" if small else ""}">{cells}</div>'


def render_html_report(report: EvaluationReport, title: str = "Fusion strategy comparison") -> str:
    """The report as one HTML string (see :func:`write_html_report`)."""
    results = report.checkpoints
    names = ", ".join(r.name for r in results)
    first = results[0]
    options = first.options
    created = _dt.datetime.fromisoformat(report.created_at).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">Dataset <b>{html.escape(report.dataset)}</b> (fingerprint {report.dataset_fingerprint[:12]}), '
        f"split <b>{html.escape(report.split)}</b>, task <b>{html.escape(report.task)}</b> ({report.task_kind}-label), "
        f"{first.n_rows} rows &middot; {len(results)} checkpoints: {html.escape(names)}</p>"
        f'<p class="meta">Generated {created} on {html.escape(report.device)} in {report.seconds:.1f} s &middot; '
        f"bootstrap {options.bootstrap} resamples, seed {options.seed}</p>"
    )
    notes = sorted({f"{r.name}: {n}" for r in results for n in r.notes})
    parts = [header]
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    if report.verdict is not None:
        items = "".join(f"<li>{html.escape(sentence)}</li>" for sentence in report.verdict.sentences)
        parts.append(_section("Verdict", f'<div class="verdict"><ul>{items}</ul></div>'))
        parts.append(f'<div class="card">{_table(analysis_figures.ranking_table(report), index=False)}</div>')
    headline = figures.table_metrics(report)[0]
    parts.append(
        _section(
            "Headline metrics",
            _cards([figures.metric_bars(report, headline), figures.metric_bars(report, "f1_macro")]),
        )
    )
    parts.append(
        _table_section(
            "Metrics with 95% bootstrap intervals",
            figures.metrics_table(report),
            "Macro averages are over the classes present in the split. Log-loss, Brier and ECE: lower is better.",
        )
    )
    parts.append(
        _table_section(
            "Does sharing help or hurt?",
            analysis_figures.sharing_table(report),
            f"Each strategy trained on every task against the same strategy trained on {report.task} alone; "
            "paired bootstrap interval of the accuracy difference and McNemar's exact test.",
            index=False,
        )
    )
    if report.pairwise:
        parts.append(
            _section(
                "Pairwise tests",
                f'<div class="card">{_table(figures.pairwise_table(report), index=False)}</div>',
                "McNemar's exact test on the rows one checkpoint gets right and the other wrong; "
                "paired bootstrap interval of the accuracy difference.",
            )
        )
    parts += _analysis_sections(report)
    parts.append(_section("ROC and precision–recall", _cards([figures.roc_figure(report, "macro"), figures.pr_figure(report, "macro"),
                                                               figures.roc_figure(report, "micro"), figures.pr_figure(report, "micro")])))  # fmt: skip
    parts.append(_section("Calibration", _cards([figures.reliability_figure(report)])))
    parts.append(_section("Confusion matrices", _cards([figures.confusion_figure(r, normalized=True, height=420) for r in results if r.curves.confusion], small=True),
                          "Rows are true classes, shares of each row; hover for counts."))  # fmt: skip
    if any(r.missing_modality for r in results):
        parts.append(
            _section(
                "Missing modalities",
                _cards([figures.missing_modality_heatmap(report, "accuracy")]),
                "Accuracy when only the listed modalities are given (the others marked absent).",
            )
        )
    if any(r.corruptions for r in results):
        parts.append(
            _section(
                "Robustness to corruptions",
                _cards(list(figures.robustness_figures(report, "accuracy").values())),
                figures.robustness_note(report),
            )
        )
    if any(r.reliance for r in results):
        parts.append(_section("Modality reliance", _cards([figures.reliance_figure(report)]),
                              "Accuracy lost when a modality's embeddings are shuffled across rows (mean ± std over repeats)."))  # fmt: skip
    if any(r.cost for r in results):
        method = next(r.cost.peak_memory_method for r in results if r.cost)
        parts.append(
            _section("Cost and accuracy", _cards([cost_accuracy_figure(report)]) + f'<div class="card">{_table(figures.cost_table(report))}</div>',
                     f"Peak memory: {method}. Stars: the Pareto front; dotted lines join compressed checkpoints to their parents.")  # fmt: skip
        )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body><main>{body}</main></body></html>\n"
    )


def _analysis_sections(report: EvaluationReport) -> list[str]:
    """Slices (every column, with intervals), worst slices, EMAP, modality use and ground truth."""
    analysed = [r for r in report.checkpoints if r.analysis is not None]
    if not analysed:
        return []
    columns = analysis_figures.slice_columns(report)
    parts = [
        _section(
            "Slices",
            _cards([analysis_figures.slice_figure(report, column) for column in columns], small=True),
            "Accuracy on every value of every metadata column (numeric columns in quartile ranges) and modality "
            "pattern, with 95% bootstrap intervals.",
        )
    ]
    worst = "".join(
        f"<h3>{html.escape(r.name)}</h3>"
        + (
            f'<div class="card">{_table(analysis_figures.worst_slices_table(r), index=False)}</div>'
            if r.analysis.worst_slices
            else '<p class="note">No slice is significantly worse than the rest.</p>'
        )
        for r in analysed
    )
    options = analysed[0].options
    parts.append(
        _section(
            "Where each checkpoint fails",
            worst,
            f"Slices of at least {options.min_support} rows tested against the rest (Fisher's exact test), "
            f"Holm-corrected at {options.alpha:.0%}; largest gap first.",
        )
    )
    parts.append(
        _section(
            "How each strategy uses the modalities",
            _cards([analysis_figures.emap_figure(report), analysis_figures.usage_figure(report)]),
            "EMAP: accuracy of each model's best additive projection; mean absolute modality Shapley values and "
            "pairwise interaction indices of the true class's probability.",
        )
    )
    parts.append(
        _table_section(
            "Explanations checked against ground truth",
            analysis_figures.ground_truth_table(report),
            "How often modality Shapley credits what the manifest records about each row.",
        )
    )
    return parts


def write_html_report(report: EvaluationReport, path: str | Path, title: str = "Fusion strategy comparison") -> Path:
    """Write the comparison report to ``path`` atomically; returns the path."""
    return write_text_atomic(path, render_html_report(report, title))
