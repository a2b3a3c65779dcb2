"""Compare: the chosen checkpoints evaluated on one split: metrics with confidence intervals,
curves, calibration, robustness and cost, and the samples they get wrong or disagree on."""

from __future__ import annotations

import json
import time

import streamlit as st

from core.encoders.cache import EmbeddingCache
from core.evaluate import EvaluationOptions, EvaluationReport, SplitInputs, disagreements, incompatibility
from core.figures import analysis as analysis_figures
from core.figures import evaluation as figures
from core.figures.tradeoffs import cost_accuracy_figure
from core.report import render_html_report
from dashboard import loaders
from dashboard.access import current_user
from dashboard.comparison import render_slices, render_usage, render_verdict, sample_line, sample_list
from dashboard.errors import friendly_errors
from dashboard.jobs import waiting_turn
from dashboard.markup import escape_markdown
from dashboard.renderers import PLOTLY_CONFIG
from dashboard.state import selection

# The comparison (its cache arguments) whose evaluation the user cancelled: not restarted until asked.
CANCELLED = "compare_cancelled"


def cancel(comparison: tuple) -> None:
    st.session_state[CANCELLED] = comparison


def resume() -> None:
    st.session_state.pop(CANCELLED, None)

st.title("Compare")
st.caption("Evaluate the checkpoints picked in the sidebar on one split, side by side.")
chosen = selection()
dataset = chosen.require_dataset()
infos = chosen.require_checkpoints()


with friendly_errors("checking the checkpoints against the dataset"):
    controls = st.columns([1, 1, 1.35, 1.15, 0.5], vertical_alignment="bottom")  # wide enough for "Robustness analyses" beside its help icon
    task = controls[3].selectbox(
        "Task",
        [t.name for t in dataset.tasks],
        format_func=lambda name: f"{name} ({dataset.task(name).kind}-label)",
        key="compare_task",
        disabled=len(dataset.tasks) == 1,
        help="The dataset's task to compare the checkpoints on: each has its own metrics, slices and verdict.",
    )
    split = controls[0].selectbox(
        "Split", ["test", "val", "train"], key="compare_split", help="The dataset split every checkpoint is evaluated on."
    )
    bootstrap = controls[1].selectbox(
        "Bootstrap resamples",
        [0, 200, 1000],
        index=1,
        key="compare_bootstrap",
        help="Resamples for the 95% confidence intervals (0: no intervals, fastest).",
    )
    robustness = controls[2].toggle(
        "Robustness analyses",
        value=True,
        key="compare_robustness",
        help="Missing-modality table, corruption sweeps and modality reliance (slower the first time).",
    )
    usable = []
    for info, loaded in loaders.load_models(infos).values():
        problem = incompatibility(loaded, dataset, task)
        if problem:
            st.error(f"{escape_markdown(problem)} It is left out of the comparison.", icon=":material/block:")
        else:
            usable.append(info)
    if not usable:
        st.stop()

with friendly_errors("evaluating the checkpoints"):
    options = EvaluationOptions(bootstrap=int(bootstrap), robustness=robustness)
    paths = [str(i.path) for i in usable]
    args = (
        tuple(paths),
        tuple(loaders.load_model(p).card.sha256 for p in paths),
        str(dataset.root),
        dataset.fingerprint,
        split,
        json.dumps(options.to_json()),
        task,
    )
    pending = loaders.pending_evaluations(paths, dataset, split, options, task)
    if pending and st.session_state.get(CANCELLED) == args:
        st.info(
            f"Evaluation cancelled. Checkpoints finished before that are cached; still to evaluate: "
            f"{', '.join(map(escape_markdown, pending.values()))}.",
            icon=":material/cancel:",
        )
        st.button("Evaluate them", key="compare_resume", icon=":material/play_arrow:", on_click=resume)
        st.stop()
    if pending:
        user = current_user()
        with st.status(f"Evaluating {len(pending)} checkpoint(s) on the {split} split…", expanded=True) as status:
            st.write(
                "Not cached yet: "
                + ", ".join(map(escape_markdown, pending.values()))
                + ". Results are cached, so this happens once per checkpoint."
            )
            st.button(
                "Cancel", key="compare_cancel", icon=":material/cancel:",
                help="Stop before the next checkpoint starts (the one under way finishes and is cached).",
                on_click=cancel, args=(args,),
            )  # fmt: skip
            with waiting_turn("evaluate", user, ", ".join(pending.values())):
                bar = st.progress(0.0)
                started = time.perf_counter()
                # Corrupted embeddings go to the embedding store: shared with `core evaluate` and
                # later visits, with bounded memory.
                inputs = SplitInputs(dataset, split, EmbeddingCache())
                for done, (path, name) in enumerate(pending.items()):
                    bar.progress(
                        done / len(pending), text=f"Evaluating {escape_markdown(name)} ({done + 1} of {len(pending)})…"
                    )
                    loaders.evaluate_to_disk_cache(path, inputs, options, task, started_by=user)
            bar.progress(1.0, text="Comparing the strategies…")
            report: EvaluationReport = loaders.evaluation_report(*args)
            seconds = time.perf_counter() - started
            status.update(label=f"Evaluated {len(pending)} checkpoint(s) in {seconds:.1f} s", state="complete", expanded=False)
    else:
        report = loaders.evaluation_report(*args)

    head = st.columns([4, 1], vertical_alignment="bottom")
    head[0].caption(
        f"{len(report.checkpoints)} checkpoint(s) on the **{split}** split of {escape_markdown(dataset.root.name)} "
        f"({report.checkpoints[0].n_rows} rows) · {report.device}"
    )
    head[1].download_button(
        "HTML report",
        data=lambda: render_html_report(report),
        file_name=f"fusion-comparison-{split}.html",
        mime="text/html",
        icon=":material/download:",
        on_click="ignore",
        help="One self-contained HTML file with every table and figure of this comparison (opens offline).",
    )
    for result in report.checkpoints:
        for note in result.notes:
            st.caption(f":material/info: {escape_markdown(result.name)}: {escape_markdown(note)}")
    render_verdict(report)

tabs = st.tabs(
    ["Metrics", "Slices", "Modality use", "ROC & PR curves", "Confusion & calibration", "Robustness", "Cost & accuracy", "Samples"]
)

with tabs[0], friendly_errors("drawing the metrics"):
    st.dataframe(figures.metrics_table(report, intervals=bootstrap > 0))
    st.caption("Cells read point (95% bootstrap interval). Log-loss, Brier and ECE: lower is better.")
    metric = st.selectbox(
        "Metric",
        list(figures.table_metrics(report)),
        format_func=lambda m: figures.METRIC_LABELS.get(m, m),
        key="compare_metric",
        help="The metric of the bar chart below.",
    )
    st.plotly_chart(figures.metric_bars(report, metric), config=PLOTLY_CONFIG)
    recall = figures.per_class_recall_table(report)
    if not recall.empty:
        with st.expander("Recall of each class (does a checkpoint neglect a rare class?)"):
            st.dataframe(recall.round(3))
            st.caption("Share of each true class's rows predicted as that class; balanced accuracy is their mean.")
    if report.pairwise:
        with st.expander("Are the differences significant? (paired tests)"):
            st.dataframe(figures.pairwise_table(report), hide_index=True)
    sharing = analysis_figures.sharing_table(report)
    if not sharing.empty:
        st.markdown(f"**Does sharing help or hurt?** Each strategy trained on every task against the same one on {task} alone")
        st.dataframe(sharing, hide_index=True)

with tabs[1], friendly_errors("drawing the slices"):
    render_slices(report, dataset)

with tabs[2], friendly_errors("drawing the modality use"):
    render_usage(report)

with tabs[3], friendly_errors("drawing the curves"):
    which = st.selectbox(
        "Class",
        figures.curve_choices(report),
        key="compare_curve_class",
        help="Micro/macro averages over classes, or one class against the rest.",
    )
    left, right = st.columns(2)
    left.plotly_chart(figures.roc_figure(report, which), config=PLOTLY_CONFIG)
    right.plotly_chart(figures.pr_figure(report, which), config=PLOTLY_CONFIG)

with tabs[4], friendly_errors("drawing the confusion matrices"):
    controls = st.columns([2, 1])
    normalized = controls[1].toggle(
        "Row shares", value=True, key="compare_confusion_norm", help="Show each true class's row as shares (on) or counts (off)."
    )
    results = [r for r in report.checkpoints if r.curves.confusion]
    if not results:
        st.caption("A multi-label task has no confusion matrix; the calibration below pools every label's yes/no decision.")
    for row in range(0, len(results), 2):
        for col, result in zip(st.columns(2), results[row : row + 2], strict=False):
            col.plotly_chart(
                figures.confusion_figure(result, normalized=normalized).update_layout(title=result.name),
                config=PLOTLY_CONFIG,
                key=f"confusion_{result.name}",
            )
    st.plotly_chart(figures.reliability_figure(report), config=PLOTLY_CONFIG)

with tabs[5], friendly_errors("drawing the robustness analyses"):
    if not robustness:
        st.info("Turn on *Robustness analyses* above to see missing-modality, corruption and reliance results.")
    else:
        st.markdown("**Missing modalities**: accuracy when only some modalities are given")
        st.plotly_chart(figures.missing_modality_heatmap(report), config=PLOTLY_CONFIG)
        sweeps = figures.robustness_figures(report)
        for row_names in [list(sweeps)[i : i + 2] for i in range(0, len(sweeps), 2)]:
            for col, name in zip(st.columns(2), row_names, strict=False):
                col.plotly_chart(sweeps[name], config=PLOTLY_CONFIG, key=f"sweep_{name}")
        st.caption(figures.robustness_note(report))
        st.plotly_chart(figures.reliance_figure(report), config=PLOTLY_CONFIG)

with tabs[6], friendly_errors("showing the cost"):
    cost = figures.cost_table(report)
    if cost.empty:
        st.info("Cost was not measured for these results.")
    else:
        st.plotly_chart(cost_accuracy_figure(report), config=PLOTLY_CONFIG)
        st.dataframe(cost)
        st.caption(
            f"Measured on {report.device}. Latency: median of single-sample calls; throughput: large batches. "
            "Size on disk: the weights file; parameter memory: weights and buffers at their precision. "
            "Compress a checkpoint on the Train page."
        )

with tabs[7], friendly_errors("listing the samples"):
    left, right = st.columns(2)
    with left:
        names = [r.name for r in report.checkpoints]
        name = st.selectbox("Checkpoint", names, key="compare_wrong_of", help="Whose misclassified samples to list.")
        result = report.by_name(name)
        wrong = [{"id": s.id, "checkpoint": result.path, "text": sample_line(s)} for s in result.samples if not s.correct]
        sample_list("Misclassified", wrong, "wrong", dataset)
    with right:
        disputed = [
            {
                "id": d["id"],
                "checkpoint": report.checkpoints[0].path,
                "text": f"{escape_markdown(d['id'])} · true **{escape_markdown(d['label'])}** · "
                + ", ".join(
                    f"{escape_markdown(n)} :{'green' if d['correct'][n] else 'red'}[**{escape_markdown(p)}**]"
                    for n, p in d["predictions"].items()
                ),
            }
            for d in disagreements(report)
        ]
        if len(report.checkpoints) < 2:
            st.info("Pick two or more checkpoints to see where they disagree.")
        else:
            sample_list(
                "Strategies disagree",
                disputed,
                "disputed",
                dataset,
                caption="Each checkpoint's prediction: green when right, red when wrong.",
            )
