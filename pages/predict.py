"""Predict: upload any subset of image / text / audio (or pick a dataset sample) and see
every chosen checkpoint's class probabilities and modality Shapley values side by side."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from core.figures.explanation import modality_bar
from core.figures.predictions import probability_figure
from dashboard import loaders
from dashboard.errors import friendly_errors
from dashboard.inputs import decode_uploads, pick_record_id
from dashboard.markup import escape_markdown
from dashboard.navigation import page
from dashboard.renderers import PLOTLY_CONFIG, VIEWS
from dashboard.state import sample_from_record, selection, set_current_sample
from dashboard.uploads import upload_limit_mb

st.title("Predict")
st.caption("Give any subset of modalities; every checkpoint picked in the sidebar predicts side by side.")
chosen = selection()
infos = chosen.require_checkpoints()

# Loaded before any input arrives (once per process), so the first upload is answered at once.
models = loaders.load_models(infos)

with friendly_errors("reading your inputs"):
    source = st.segmented_control(
        "Input",
        ["Upload", "Dataset sample"],
        default="Upload",
        key="predict_source",
        help="Upload your own files and text, or take a sample from the dataset in the sidebar.",
    )
    sample = None
    if source == "Dataset sample":
        dataset = chosen.require_dataset()
        left, right = st.columns([1, 3])
        record_id = pick_record_id(dataset, "predict", left, right)
        if record_id is not None:
            sample = sample_from_record(dataset, record_id)
    else:
        cols = st.columns(3)
        max_mb = upload_limit_mb()

        def uploader(col, label: str, help: str):
            """One file uploader of this page (key ``predict_<label>``), within the server's size limit."""
            return col.file_uploader(label, key=f"predict_{label.lower()}", max_upload_size=max_mb, help=help)

        image_file = uploader(cols[0], "Image", "PNG, JPEG, BMP, WebP or GIF. Checked for size and pixel count before decoding.")
        text = cols[1].text_area(
            "Text",
            key="predict_text",
            height=140,
            placeholder="Type or paste text…",
            help="Plain text; whitespace is normalised. Leave empty to predict without text.",
        )
        audio_file = uploader(
            cols[2], "Audio", "WAV, FLAC, OGG or MP3; resampled to 16 kHz mono. Up to the duration limit (FUSION_MAX_AUDIO_SECONDS)."
        )
        recording = cols[2].audio_input(
            "…or record with your microphone",
            key="predict_mic",
            help="Used when no audio file is uploaded.",
        )
        audio_source = audio_file if audio_file is not None else recording
        decoded = decode_uploads(
            image_file.getvalue() if image_file is not None else None,
            text,
            audio_source.getvalue() if audio_source is not None else None,
            file_names=[f.name for f in (image_file, audio_file) if f is not None],
        )
        names = {"image": "Image", "text": "Text", "audio": "Audio"}
        for modality, message in decoded.errors.items():
            st.error(f"**{names[modality]}:** {escape_markdown(message)}", icon=":material/error:")
        sample = decoded.sample

    if sample is None:
        st.info(
            "Upload an image, type some text or add audio (any subset) to get predictions.", icon=":material/upload:"
        )
        st.stop()
    set_current_sample(sample)

with friendly_errors("predicting"):
    # Timed from here: models are loaded once per process, the prediction is what the user waits for.
    started = time.perf_counter()
    results = {}
    for name, (info, loaded) in models.items():
        prediction = loaders.prediction(str(info.path), loaded.card.sha256, sample.key, sample.decoded)
        if prediction is None:
            st.info(
                f"**{escape_markdown(name)}** uses {', '.join(loaded.model.modalities)}, none of which you gave: no prediction.",
                icon=":material/info:",
            )
            continue
        if prediction.ignored_modalities:
            st.info(
                f"**{escape_markdown(name)}** does not use {', '.join(prediction.ignored_modalities)}; it predicts from "
                f"{', '.join(prediction.used_modalities)} only.",
                icon=":material/info:",
            )
        results[name] = (info, loaded, prediction)
    elapsed = time.perf_counter() - started
    if not results:
        st.stop()

    st.subheader("Prediction")
    predictions = {name: prediction.prediction for name, (_, _, prediction) in results.items()}
    label = sample.decoded.label
    summary = pd.DataFrame(
        [
            {
                "checkpoint": name,
                "fusion": prediction.fusion,
                "prediction": prediction.prediction,
                "confidence": prediction.confidence,
                "uses": " + ".join(prediction.used_modalities),
                **({"correct": prediction.prediction == label} if label is not None else {}),
            }
            for name, (_, _, prediction) in results.items()
        ]
    )
    if len(set(predictions.values())) > 1:
        votes = ", ".join(f"{escape_markdown(name)} → **{escape_markdown(p)}**" for name, p in predictions.items())
        st.warning(
            f"The strategies disagree: {votes}. Disputed classes are highlighted below.", icon=":material/call_split:"
        )
    st.dataframe(
        summary,
        hide_index=True,
        column_config={"confidence": st.column_config.ProgressColumn(format="%.3f", min_value=0.0, max_value=1.0)},
    )
    st.caption(
        f"{len(results)} checkpoint(s) predicted in {elapsed * 1000:.0f} ms (models already loaded)"
        + (f" · true label: **{escape_markdown(label)}**" if label is not None else "")
    )

    others = [t for _, _, prediction in results.values() for t in prediction.tasks[1:]]
    if others:
        st.markdown("**Every task**")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "checkpoint": name,
                        "task": t.task,
                        "kind": t.kind,
                        "prediction": " | ".join(t.predicted) or "(no label)",
                        "confidence": max(t.probabilities) if t.kind == "single" else None,
                    }
                    for name, (_, _, prediction) in results.items()
                    for t in prediction.tasks
                ]
            ),
            hide_index=True,
            column_config={"confidence": st.column_config.ProgressColumn(format="%.3f", min_value=0.0, max_value=1.0)},
        )
        st.caption("Multi-label tasks list every label whose probability reaches its threshold (tuned on validation).")

    # Checkpoints trained on different class lists cannot share one chart.
    groups: dict[tuple[str, ...], dict] = {}
    for name, (_, _, prediction) in results.items():
        groups.setdefault(tuple(prediction.classes), {})[name] = prediction.probabilities
    disputed = sorted(set(predictions.values())) if len(set(predictions.values())) > 1 else []
    for classes, probabilities in groups.items():
        fig = probability_figure(probabilities, list(classes), highlight=[c for c in disputed if c in classes])
        st.plotly_chart(fig, config=PLOTLY_CONFIG)

    st.subheader("Which modality drove each prediction")
    st.caption(
        "Modality Shapley values: each modality's contribution to the predicted class probability, relative to no input."
    )
    items = list(results.items())
    for row in range(0, len(items), 3):
        for col, (name, (info, loaded, _)) in zip(st.columns(3), items[row : row + 3], strict=False):
            with col:
                expl = loaders.modality_explanation(str(info.path), loaded.card.sha256, sample.key, sample.decoded)
                st.markdown(f"**{escape_markdown(name)}** → {escape_markdown(expl.target_name)}")
                st.plotly_chart(
                    modality_bar(expl).update_layout(
                        title=None, height=90 + 40 * len(expl.modality_totals), margin={"t": 10}
                    ),
                    config=PLOTLY_CONFIG,
                    key=f"shapley_{name}",
                )

with friendly_errors("showing your inputs"):
    st.subheader("Input")
    st.caption(
        f"Showing {escape_markdown(sample.description)}: {' + '.join(sample.decoded.present())}. "
        "Open **Explain** for SHAP and LIME attributions of this sample."
    )
    present = [view for view in VIEWS if view.present_in(sample)]
    widths = [2 if view.modality == "audio" else 1 for view in present]  # the audio preview has a chart
    for col, view in zip(st.columns(widths), present, strict=True):
        with col:
            st.markdown(f"**{view.title}**")
            view.render_input(sample, key=f"predict_{view.modality}")

st.page_link(page("explain"), label="Explain this sample with SHAP and LIME", icon=":material/psychology_alt:")
