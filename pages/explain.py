"""Explain: why the checkpoints predict what they do for the current sample: modality
Shapley values and interactions for each; SHAP, LIME and the gradient methods side by side
for one; its attention maps when it is an attention fusion; and whether to trust them."""

from __future__ import annotations

import json

import streamlit as st

from core.errors import ExplanationError
from core.explain import EXPLAINERS, ExplainParams, explain, resolve_target
from core.explain.params import SHAP_ALGORITHMS
from core.figures import explanation as explanation_figures
from dashboard import loaders, trust
from dashboard.access import current_user
from dashboard.errors import friendly_errors, show_exception
from dashboard.inputs import pick_record_id
from dashboard.jobs import follow, job_registry, session_id
from dashboard.links import new_explain_link
from dashboard.markup import escape_markdown
from dashboard.renderers import PLOTLY_CONFIG, VIEWS
from dashboard.state import EXPLAIN_CHECKPOINT, current_sample, sample_from_record, selection, set_current_sample

st.title("Explain")
st.caption(
    "Modality Shapley values for every chosen checkpoint, then SHAP, LIME and gradient attributions inside each "
    "modality, and the checks that say which of them to believe."
)
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
    loaded_models = loaders.load_models(infos)
    tasks = list(dict.fromkeys(t.name for _, loaded in loaded_models.values() for t in loaded.model.tasks))
    task = (
        st.selectbox(
            "Task",
            tasks,
            key="explain_task",
            help="Explanations are of this task's output; the class to explain below is one of its classes (or labels).",
        )
        if len(tasks) > 1
        else tasks[0] if tasks else None
    )
    st.subheader("Which modality mattered" + (f" for {task}" if len(tasks) > 1 else ""))
    items = [
        (name, pair)
        for name, pair in loaded_models.items()
        if set(pair[1].model.modalities) & set(sample.decoded.present())
        and task in {t.name for t in pair[1].model.tasks}
    ]
    for row in range(0, len(items), 3):
        for col, (name, (info, loaded)) in zip(st.columns(3), items[row : row + 3], strict=False):
            with col, st.container(border=True):
                expl = loaders.modality_explanation(str(info.path), loaded.card.sha256, sample.key, sample.decoded, task)
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

with friendly_errors("setting up the attributions"):
    st.subheader("Inside each modality")
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
        help="Whose prediction the attributions explain.",
    )
    info, loaded = loaded_models[name]
    base = loaders.modality_explanation(str(info.path), loaded.card.sha256, sample.key, sample.decoded, task)
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
    picker, steps_control = st.columns([6, 1])
    methods = picker.multiselect(
        "Methods",
        [m for m, explainer in EXPLAINERS.items() if explainer.segment_scores],
        default=["shap", "lime", "integrated_gradients", "gradient_shap", "grad_cam"],
        format_func=trust.LABELS.get,
        key="explain_methods",
        help=(
            "SHAP and LIME perturb segments; Integrated Gradients and GradientSHAP (Captum) follow gradients through "
            "every differentiable encoder at once; Grad-CAM weighs the image encoder's last convolution."
        ),
    )
    ig_steps = steps_control.number_input(
        "IG steps", 8, 512, 64, 8, key="explain_ig_steps", help="Integration points of Integrated Gradients."
    )
    if not methods:
        st.info("Pick at least one method.")
        st.stop()
    params = ExplainParams(
        lime_samples=int(lime_samples),
        shap_evals=int(shap_evals),
        shap_algorithm=shap_algorithm,
        image_segments=int(image_segments),
        audio_time_segments=int(audio_segments),
        ig_steps=int(ig_steps),
    )

with friendly_errors("computing the attributions"):
    key = (loaded.card.sha256, sample.key, task, "+".join(methods), target, json.dumps(params.to_dict(), sort_keys=True))
    jobs = job_registry()
    previous = st.session_state.get("explain_job_key")
    if previous is not None and previous != key:
        jobs.cancel(previous)  # the inputs changed: stop computing the stale explanation
    st.session_state["explain_job_key"] = key
    job = jobs.submit(
        key,
        lambda progress, cancel: explain(loaded, sample.decoded, methods, target, params, progress, cancel, task),
        owner=current_user(),
        session=session_id(),
    )
    results = follow(job, f"Computing {', '.join(trust.LABELS[m] for m in methods)}")
    if results is None:
        st.stop()
    first = next(iter(results.values()))
    st.caption(
        f"Explaining P({escape_markdown(first.target_name)}) of {escape_markdown(name)} · {trust.timing_line(results)} · "
        f"{first.metadata.get('device', '')} · cached afterwards"
    )
    report = trust.cached_report(loaded, chosen.dataset, task)
    for view in VIEWS:
        if not view.present_in(sample) or view.modality not in loaded.model.modalities:
            continue
        with st.container(border=True):
            head = st.columns([3, 1])
            head[0].markdown(f"#### {view.title}")
            with head[1]:
                opacity = view.opacity_control(f"explain_{view.modality}")
            shown = list(results.values())
            for row in range(0, len(shown), 3):
                for col, result in zip(st.columns(3), shown[row : row + 3], strict=False):
                    with col:
                        trust.render_tile(view, result, sample, loaded, report, opacity)

if trust.is_attention_fusion(loaded):
    with friendly_errors("drawing the attention maps"):
        st.subheader("Attention between modalities")
        trust.render_attention(loaded, sample, chosen.dataset)

with friendly_errors("checking the attributions"):
    st.subheader("Can these attributions be trusted?")
    trust.render_trust_panel(results, loaded, chosen.dataset, task)
