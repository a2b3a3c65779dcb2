"""Explain: why the checkpoints predict what they do for the current sample: modality
Shapley values and interactions for each, SHAP and LIME side by side for one."""

from __future__ import annotations

import json
import time

import streamlit as st

from core.errors import ExplanationError
from core.explain import ExplainParams, explain, resolve_target
from core.explain.params import SHAP_ALGORITHMS
from core.figures import explanation as explanation_figures
from dashboard import loaders
from dashboard.access import current_user
from dashboard.errors import friendly_errors, show_exception
from dashboard.inputs import pick_record_id
from dashboard.jobs import job_registry, session_id, waiting_message
from dashboard.links import new_explain_link
from dashboard.markup import escape_markdown
from dashboard.renderers import PLOTLY_CONFIG, VIEWS
from dashboard.state import EXPLAIN_CHECKPOINT, current_sample, sample_from_record, selection, set_current_sample

st.title("Explain")
st.caption("Modality Shapley values for every chosen checkpoint, then SHAP and LIME attributions inside each modality.")
chosen = selection()
infos = chosen.require_checkpoints()

TARGET_REQUEST = "explain_target_request"

with friendly_errors("opening the link"):
    link = new_explain_link()
    if link is not None:
        if link.checkpoint:
            named = {i.name: i for i in chosen.checkpoints if i.error is None}
            if link.checkpoint not in named:
                st.error(
                    f"The link names a checkpoint that is not here: {escape_markdown(repr(link.checkpoint))}.",
                    icon=":material/link_off:",
                )
            else:
                st.session_state[EXPLAIN_CHECKPOINT] = str(named[link.checkpoint].path)
                if named[link.checkpoint] not in infos:
                    infos = [*infos, named[link.checkpoint]]
        if link.target:
            st.session_state[TARGET_REQUEST] = link.target
        if link.sample:
            set_current_sample(sample_from_record(chosen.require_dataset(), link.sample))

with friendly_errors("choosing the sample"):
    sample = current_sample()
    with st.expander("Pick a dataset sample" if sample else "Pick a sample to explain", expanded=sample is None):
        if chosen.dataset is None:
            st.caption(chosen.dataset_error or "No dataset loaded.")
        else:
            left, mid, right = st.columns([1, 3, 1], vertical_alignment="bottom")
            record_id = pick_record_id(chosen.dataset, "explain", left, mid)
            if right.button("Explain this one", key="explain_use_record", help="Make this record the current sample."):
                sample = sample_from_record(chosen.dataset, record_id)
                set_current_sample(sample)
    if sample is None:
        st.info(
            "Upload inputs on **Predict**, open a sample from **Compare**, or pick a dataset sample above.",
            icon=":material/info:",
        )
        st.stop()
    st.markdown(f"Explaining **{escape_markdown(sample.description)}** · {' + '.join(sample.decoded.present())}")

with friendly_errors("computing modality Shapley values"):
    st.subheader("Which modality mattered")
    loaded_models = loaders.load_models(infos)
    items = [
        (name, pair)
        for name, pair in loaded_models.items()
        if set(pair[1].model.modalities) & set(sample.decoded.present())
    ]
    for row in range(0, len(items), 3):
        for col, (name, (info, loaded)) in zip(st.columns(3), items[row : row + 3], strict=False):
            with col, st.container(border=True):
                expl = loaders.modality_explanation(
                    str(info.path), loaded.card.sha256, sample.key, sample.decoded
                )
                st.markdown(
                    f"**{escape_markdown(name)}** predicts **{escape_markdown(expl.target_name)}** "
                    f"({expl.probabilities[expl.target]:.2f})"
                )
                st.plotly_chart(
                    explanation_figures.modality_bar(expl).update_layout(title=None, margin={"t": 10}),
                    config=PLOTLY_CONFIG,
                    key=f"mbar_{name}",
                )
                if expl.interactions is not None and len(expl.interaction_modalities) > 1:
                    st.plotly_chart(
                        explanation_figures.interaction_heatmap(expl).update_layout(
                            title="Interactions", height=240, margin={"t": 40}
                        ),
                        config=PLOTLY_CONFIG,
                        key=f"inter_{name}",
                    )

with friendly_errors("setting up SHAP and LIME"):
    st.subheader("Inside each modality: SHAP and LIME")
    names = [name for name, _ in items]
    if not names:
        st.info("None of the chosen checkpoints uses the modalities of this sample.")
        st.stop()
    linked = st.session_state.get(EXPLAIN_CHECKPOINT)
    default = next((i for i, n in enumerate(names) if str(loaded_models[n][0].path) == linked), 0)
    controls = st.columns([2, 2, 1, 1, 1.4, 1, 1])
    name = controls[0].selectbox(
        "Checkpoint",
        names,
        index=default,
        key="explain_checkpoint_name",
        help="Whose prediction SHAP and LIME explain.",
    )
    info, loaded = loaded_models[name]
    base = loaders.modality_explanation(str(info.path), loaded.card.sha256, sample.key, sample.decoded)
    requested = st.session_state.pop(TARGET_REQUEST, None)
    if requested is not None:
        try:  # a linked class: the same check, and the same message, as the CLI's --target
            st.session_state["explain_target"] = base.classes[resolve_target(base.classes, requested, base.probabilities)]
        except ExplanationError as err:
            show_exception(err, "reading the linked class")
    target = controls[1].selectbox(
        "Class to explain",
        base.classes,
        index=base.target,
        key="explain_target",
        help="Attributions are for this class's probability; the predicted class is preselected.",
    )
    lime_samples = controls[2].number_input(
        "LIME samples",
        50,
        5000,
        300,
        50,
        key="explain_lime_samples",
        help="Perturbed samples per modality for LIME (more: steadier, slower).",
    )
    shap_evals = controls[3].number_input(
        "SHAP evals",
        50,
        5000,
        300,
        50,
        key="explain_shap_evals",
        help="Model evaluations for the joint SHAP explainer.",
    )
    shap_algorithm = controls[4].selectbox(
        "SHAP algorithm",
        SHAP_ALGORITHMS,
        format_func={"partition": "Partition", "permutation": "Permutation"}.get,
        key="explain_shap_algorithm",
        help=(
            "Partition: Owen values over a hierarchy (modalities, then neighbouring regions, words, "
            "spectrogram blocks); few large batches, fastest. Permutation: sampled Shapley values "
            "of the flat game; one model call per permutation."
        ),
    )
    image_segments = controls[5].number_input(
        "Image segments",
        4,
        200,
        36,
        4,
        key="explain_image_segments",
        help="Superpixels the image is split into (SLIC).",
    )
    audio_segments = controls[6].number_input(
        "Audio segments", 2, 40, 10, 1, key="explain_audio_segments", help="Time slices of the audio clip."
    )
    params = ExplainParams(
        lime_samples=int(lime_samples),
        shap_evals=int(shap_evals),
        shap_algorithm=shap_algorithm,
        image_segments=int(image_segments),
        audio_time_segments=int(audio_segments),
    )

with friendly_errors("computing SHAP and LIME"):
    key = (loaded.card.sha256, sample.key, "shap+lime", target, json.dumps(params.to_dict(), sort_keys=True))
    jobs = job_registry()
    previous = st.session_state.get("explain_job_key")
    if previous is not None and previous != key:
        jobs.cancel(previous)  # the inputs changed: stop computing the stale explanation
    st.session_state["explain_job_key"] = key
    job = jobs.submit(
        key,
        lambda progress, cancel: explain(loaded, sample.decoded, ["shap", "lime"], target, params, progress, cancel),
        owner=current_user(),
        session=session_id(),
    )
    if not job.done:
        note, bar = st.empty(), st.progress(0.0, text="Computing SHAP and LIME…")
        while not job.done:
            # Each update is also where Streamlit stops this run if the user changes an input.
            if job.ahead is not None:
                note.info(waiting_message(job.ahead), icon=":material/hourglass_top:")
            else:
                note.empty()
                bar.progress(min(job.progress, 1.0), text=f"Computing SHAP and LIME… {job.progress:.0%}")
            time.sleep(0.2)
        note.empty()
        bar.empty()
    if job.error is not None:
        show_exception(job.error, "computing SHAP and LIME")
        st.stop()
    if job.result is None:
        st.info("The explanation was cancelled. Change a setting or reload to compute it again.")
        st.stop()
    shap_result, lime_result = job.result["shap"], job.result["lime"]
    runtime = sum(r.metadata.get("runtime_s", 0.0) for r in (shap_result, lime_result))
    explainer = str(shap_result.metadata.get("explainer", "")).removeprefix("shap.")
    st.caption(
        f"Explaining P({escape_markdown(shap_result.target_name)}) of {escape_markdown(name)} · SHAP by {explainer}, "
        f"{shap_result.metadata.get('evaluations', 0)} evaluations · {shap_result.metadata.get('device', '')} · "
        f"computed in {runtime:.1f} s, cached afterwards"
    )

    for view in VIEWS:
        if not view.present_in(sample) or view.modality not in loaded.model.modalities:
            continue
        with st.container(border=True):
            head = st.columns([3, 1])
            head[0].markdown(f"#### {view.title}")
            with head[1]:
                opacity = view.opacity_control(f"explain_{view.modality}")
            left, right = st.columns(2)
            for col, result in ((left, shap_result), (right, lime_result)):
                with col:
                    st.markdown(
                        f"**{result.method.upper()}** · total {result.modality_totals.get(view.modality, 0.0):+.3f}"
                    )
                    view.render_attribution(
                        result, sample, loaded.model, key=f"{result.method}_{view.modality}", opacity=opacity
                    )

    st.subheader("Can these attributions be trusted?")
    left, right = st.columns(2)
    left.plotly_chart(explanation_figures.faithfulness_curves([shap_result, lime_result]), config=PLOTLY_CONFIG)
    right.plotly_chart(explanation_figures.agreement_figure(shap_result, lime_result), config=PLOTLY_CONFIG)
    st.caption(
        "Faithfulness: removing the most-attributed features first should drop the probability faster than a random order. "
        "Agreement: rank correlation of SHAP and LIME segment scores, per modality."
    )
