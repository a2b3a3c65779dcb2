"""Overview: what the dataset holds and which checkpoints were trained on it."""

from __future__ import annotations

import random

import pandas as pd
import streamlit as st

from core.data.manifest import problems_summary
from core.figures.dataset import card_metric_figure, class_balance_figure, modality_coverage_figure
from core.train.imbalance import IMBALANCE_WARNING, imbalance_ratio
from dashboard.errors import friendly_errors
from dashboard.markup import escape_markdown
from dashboard.renderers import PLOTLY_CONFIG, render_record_card
from dashboard.state import selection

GALLERY_SIZE = 8

st.title("Overview")
st.caption("The dataset in the sidebar and the checkpoints trained on it, at a glance.")
chosen = selection()

with friendly_errors("summarising the dataset"):
    dataset = chosen.require_dataset()
    sizes = dataset.split_sizes()
    cols = st.columns([1, 0.8, 1.8, 1.8])
    cols[0].metric("Records", f"{len(dataset.records):,}", help="Rows of the manifest that passed validation.")
    cols[1].metric("Classes", len(dataset.classes), help="Distinct labels.")
    cols[2].metric("Modalities", " · ".join(dataset.modalities()), help="Modalities present in at least one record.")
    cols[3].metric("Train · val · test", " · ".join(f"{sizes[s]:,}" for s in ("train", "val", "test")), help="Records per split.")
    if dataset.skipped is not None:
        skipped = dataset.skipped
        st.warning(
            f"{escape_markdown(problems_summary(skipped))}. Those {len(skipped.bad_rows):,} rows are left out "
            f"(listed below); every page uses the other {len(dataset.records):,}. Fix the manifest to bring them back.",
            icon=":material/warning:",
        )
        with st.expander(f"Rows left out ({len(skipped.bad_rows):,})"):
            st.dataframe(
                pd.DataFrame(
                    [{"row": i.row or "manifest", "column": i.column, "problem": i.reason} for i in skipped.issues[:5000]]
                ),
                hide_index=True,
            )
            if len(skipped.issues) > 5000:
                st.caption(f"The first 5,000 of {len(skipped.issues):,} problems; `python -m core validate` lists all.")

    if len(dataset.tasks) > 1:
        st.caption(
            "Tasks: "
            + " · ".join(f"**{t.name}** ({t.kind}-label, {len(t.classes)} {'labels' if t.multi_label else 'classes'})" for t in dataset.tasks)
        )
    left, right = st.columns([3, 2])
    with left:
        task = (
            st.selectbox("Task", [t.name for t in dataset.tasks], key="overview_task", help="Whose classes to count.")
            if len(dataset.tasks) > 1
            else None
        )
        counts = {split: dataset.class_counts(split, task) for split in ("train", "val", "test") if sizes[split]}
        st.plotly_chart(class_balance_figure(counts), config=PLOTLY_CONFIG)
        ratio = imbalance_ratio(dataset.class_counts("train", task))
        if ratio >= IMBALANCE_WARNING:
            st.warning(
                f"Imbalanced classes: the largest has {ratio:.1f}× the training rows of the smallest."
                if ratio != float("inf")
                else "Imbalanced classes: some class has no training row at all.",
                icon=":material/balance:",
            )
            st.caption(
                "Accuracy can hide a neglected class: read balanced accuracy and per-class recall on Compare, and "
                "try class weights or the balanced sampler on the Train page."
            )
    with right:
        st.plotly_chart(modality_coverage_figure(dataset.modality_coverage()), config=PLOTLY_CONFIG)
        st.caption("A record may lack some modalities; fusion strategies are trained to cope with that.")

    st.subheader("Sample gallery")
    controls = st.columns([1, 1, 4])
    split = controls[0].selectbox(
        "Split", ["test", "val", "train"], key="gallery_split", help="Which split the gallery samples come from."
    )
    if controls[1].button("Show others", icon=":material/shuffle:", help="Draw another set of samples."):
        st.session_state["gallery_seed"] = st.session_state.get("gallery_seed", 0) + 1
    records = dataset.split(split)
    picked = random.Random(st.session_state.get("gallery_seed", 0)).sample(records, min(GALLERY_SIZE, len(records)))
    for row in range(0, len(picked), 4):
        for col, record in zip(st.columns(4), picked[row : row + 4], strict=False):
            with col:
                render_record_card(record, dataset.limits)

with friendly_errors("listing the checkpoints"):
    st.subheader("Checkpoints")
    infos = chosen.checkpoints
    readable = [i for i in infos if i.error is None]
    if not readable:
        st.info("No readable checkpoint in the chosen folder. Build the demo ones with `make run`, or use the Train page.")
    else:
        table = pd.DataFrame(
            [
                {
                    "checkpoint": i.name,
                    "kind": i.kind,
                    "fusion": i.fusion,
                    "modalities": " + ".join(i.modalities),
                    "encoders": ", ".join(f"{m}: {e}" for m, e in sorted(i.encoders.items())),
                    "parameters": i.parameters,
                    "val accuracy": i.val_accuracy,
                    "test accuracy": i.test_accuracy,
                    "created": i.created_at.replace("T", " ")[:16],
                }
                for i in readable
            ]
        )
        st.dataframe(
            table,
            hide_index=True,
            column_config={
                "parameters": st.column_config.NumberColumn(format="%d"),
                "val accuracy": st.column_config.ProgressColumn(format="%.3f", min_value=0.0, max_value=1.0),
                "test accuracy": st.column_config.ProgressColumn(format="%.3f", min_value=0.0, max_value=1.0),
            },
        )
        st.plotly_chart(card_metric_figure(readable), config=PLOTLY_CONFIG)
        st.caption("Accuracies recorded in each checkpoint's card at training time. The Compare page evaluates them with confidence intervals.")
