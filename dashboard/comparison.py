"""The Compare page's analysis views: the verdict, slices (with their samples) and modality use.

Everything shown is computed by :mod:`core.evaluate` and drawn by :mod:`core.figures.analysis`;
this module lays it out and turns a listed sample into a link to the Explain page.
"""

from __future__ import annotations

import streamlit as st

from core.data import Dataset
from core.evaluate import EvaluationReport, SampleResult
from core.evaluate.slices import slice_rows
from core.figures import analysis as figures
from dashboard.links import open_in_explain
from dashboard.markup import escape_markdown
from dashboard.renderers import PLOTLY_CONFIG

LISTED_SAMPLES = 12


def sample_line(sample: SampleResult) -> str:
    """One row of a sample list: id, true class, prediction and confidence, modalities."""
    mark = ":green[right]" if sample.correct else ":red[wrong]"
    return (
        f"{escape_markdown(sample.id)} · true **{escape_markdown(sample.label)}** → "
        f"**{escape_markdown(sample.prediction)}** ({max(sample.probabilities):.2f}) {mark} · {' + '.join(sample.present)}"
    )


def sample_list(title: str, rows: list[dict], key: str, dataset: Dataset, caption: str | None = None) -> None:
    """Samples (``{"id", "checkpoint", "text"}``), each with a button that opens it in Explain."""
    st.markdown(f"**{escape_markdown(title)}** ({len(rows)})")
    if caption:
        st.caption(caption)
    if not rows:
        st.caption("None.")
        return
    show_all = len(rows) > LISTED_SAMPLES and st.toggle(
        f"Show all {len(rows)}", key=f"{key}_all", help=f"Only the first {LISTED_SAMPLES} are listed by default."
    )
    for i, row in enumerate(rows if show_all else rows[:LISTED_SAMPLES]):
        text, button = st.columns([4, 1], vertical_alignment="center")
        text.markdown(row["text"])
        if button.button("Explain", key=f"{key}_{i}", width="stretch", help="Open this sample on the Explain page."):
            open_in_explain(dataset, row["id"], row["checkpoint"])


def render_verdict(report: EvaluationReport) -> None:
    """The verdict in a box: its sentences, and the ranking behind them."""
    if report.verdict is None:
        return
    with st.container(border=True):
        st.markdown("#### :material/gavel: Verdict")
        st.markdown("\n".join(f"- {sentence}" for sentence in report.verdict.sentences))
        with st.expander("Ranking and significant differences"):
            st.dataframe(figures.ranking_table(report), hide_index=True)
            if report.verdict.significant:
                st.caption(
                    "Significant after a Holm correction of the paired McNemar tests: "
                    + "; ".join(f"{a} > {b} (+{100 * d:.1f} points, p = {p:.2g})" for a, b, d, p in report.verdict.significant)
                )
            else:
                st.caption("No difference between two checkpoints is significant after a Holm correction.")


def render_slices(report: EvaluationReport, dataset: Dataset) -> None:
    """Slice metrics by column, each checkpoint's worst slices, and a slice's samples."""
    analysed = [r for r in report.checkpoints if r.analysis is not None]
    if not analysed:
        st.info("Slices are part of the analysis, which was not computed for these results.")
        return
    columns = figures.slice_columns(report)
    column = st.selectbox(
        "Slice by",
        columns,
        index=columns.index("information") if "information" in columns else 0,
        key="compare_slice_column",
        help="A metadata column of the manifest (numeric ones in quartile ranges), or the modality-presence pattern.",
    )
    st.plotly_chart(figures.slice_figure(report, column), config=PLOTLY_CONFIG)
    names = [r.name for r in analysed]
    name = st.selectbox("Checkpoint", names, key="compare_slice_checkpoint", help="Whose slices to list below.")
    result = report.by_name(name)
    st.dataframe(figures.slice_table(result, column), hide_index=True)
    st.markdown("**Where it fails:** slices significantly less accurate than the rest")
    worst = figures.worst_slices_table(result)
    if worst.empty:
        st.caption(
            f"No slice of at least {result.options.min_support} rows is significantly worse than the rest "
            f"(Fisher's exact test, Holm-corrected at {result.options.alpha:.0%})."
        )
    else:
        st.dataframe(worst, hide_index=True)
    choices = {s.label: {s.column: s.value} for s in result.analysis.slices if s.column == column}
    choices |= {f.label: f.conditions for f in result.analysis.worst_slices}
    chosen = st.selectbox("List the samples of", list(choices), key="compare_slice_samples", help="Open any of them in Explain.")
    if chosen:
        rows = [result.samples[i] for i in slice_rows(result.samples, choices[chosen])]
        rows.sort(key=lambda s: s.correct)  # mistakes first
        items = [{"id": s.id, "checkpoint": result.path, "text": sample_line(s)} for s in rows]
        sample_list(f"{chosen} · {name}", items, "slice_samples", dataset, caption="Misclassified samples first.")


def render_usage(report: EvaluationReport) -> None:
    """EMAP, mean Shapley values and interactions (over the split or a slice), ground-truth checks."""
    analysed = [r for r in report.checkpoints if r.analysis is not None]
    if not analysed:
        st.info("Modality use is part of the analysis, which was not computed for these results.")
        return
    st.plotly_chart(figures.emap_figure(report), config=PLOTLY_CONFIG)
    st.caption(
        "EMAP (Hessel and Lee, 2020) replaces each model by its best additive projection over the modalities; "
        "the accuracy it loses is what the model owes to cross-modal interactions."
    )
    labels = list(dict.fromkeys(label for r in analysed for label in r.analysis.usage_by_slice))
    where = st.selectbox(
        "Over", ["the whole split", *labels], key="compare_usage_slice", help="The whole split, or the rows of one slice."
    )
    st.plotly_chart(figures.usage_figure(report, None if where == "the whole split" else where), config=PLOTLY_CONFIG)
    st.caption(
        "Exact modality Shapley values of the true class's probability (2^M coalitions per row, absent = the "
        "learned missing-modality embedding) and pairwise Shapley interaction indices, averaged over the rows."
    )
    truth = figures.ground_truth_table(report)
    if not truth.empty:
        st.markdown("**Checked against the dataset's ground truth**")
        st.dataframe(truth)
        st.caption(
            "Rates of rows where modality Shapley credits what the manifest records: a clean modality over a "
            "corrupted or missing one, the informative modality of 'unique' rows, an interaction on 'synergy' rows."
        )
