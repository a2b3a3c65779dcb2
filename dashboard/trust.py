"""The Explain page's trust views: one tile per method and modality with its sanity verdict,
the attention maps of an attention fusion, and the "Can these attributions be trusted?" panel.

Everything shown is computed by :mod:`core.explain` (attributions, attention, the method
assessment) and drawn by :mod:`core.figures`; this module lays it out.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from core.checkpoints import LoadedCheckpoint
from core.data import Dataset
from core.explain import EXPLAINERS, Explanation
from core.explain.attention_maps import sample_attention
from core.explain.trust import AssessmentOptions, TrustReport, assess_methods, cached_assessment
from core.figures import explanation as explanation_figures
from core.figures import trust as trust_figures
from core.fusion.attention import AttentionFusion
from dashboard import loaders
from dashboard.access import current_user
from dashboard.jobs import follow, job_registry, session_id
from dashboard.renderers import PLOTLY_CONFIG, ModalityView
from dashboard.state import CurrentSample

LABELS = {name: explainer.label for name, explainer in EXPLAINERS.items()}
ASSESSMENT = AssessmentOptions()
"""What the page asks for: the same options for every checkpoint, so each is assessed once."""


def timing_line(results: dict[str, Explanation]) -> str:
    """How each method ran and how long it took: "SHAP by PartitionExplainer, 300 evaluations, 0.31 s · ..."."""
    parts = []
    for method, result in results.items():
        meta = result.metadata
        how = {
            "shap": f" by {str(meta.get('explainer', '')).removeprefix('shap.')}, {meta.get('evaluations', 0)} evaluations",
            "lime": f", {meta.get('evaluations', 0)} evaluations",
            "integrated_gradients": f", {meta.get('n_steps', 0)} steps",
            "gradient_shap": f", {meta.get('n_samples', 0)} draws",
        }.get(method, "")
        parts.append(f"{LABELS.get(method, method)}{how} {meta.get('runtime_s', 0.0):.2f} s")
    return " · ".join(parts)


def sanity_note(report: TrustReport | None, method: str, modality: str) -> str:
    """The randomisation verdict of ``method`` on ``modality`` for this checkpoint, as markdown."""
    scores = report.methods.get(method).modalities.get(modality) if report and method in report.methods else None
    if scores is None or scores.model_randomisation_passed is None:
        return ""
    rho = scores.model_randomisation
    if scores.model_randomisation_passed:
        return f":green[passes the randomisation check] (ρ {rho:+.2f})"
    return (
        f":red[**fails the randomisation check** (ρ {rho:+.2f}): this map barely changes when the model's "
        "weights are destroyed, so it shows the input more than the model]"
    )


def render_tile(
    view: ModalityView,
    result: Explanation,
    sample: CurrentSample,
    loaded: LoadedCheckpoint,
    report: TrustReport | None,
    opacity: float,
) -> None:
    """One method's attribution of one modality: header, verdict, map (or why there is none)."""
    label = LABELS.get(result.method, result.method)
    reason = result.metadata.get("not_applicable") or result.metadata.get("not_differentiable", {}).get(view.modality)
    if view.modality not in result.segment_scores:
        st.markdown(f"**{label}**")
        reason = (reason or "this method did not attribute this modality").rstrip(".")
        st.info(f"Not shown: {reason}.", icon=":material/block:")
        return
    st.markdown(f"**{label}** · total {result.modality_totals.get(view.modality, 0.0):+.3f}")
    note = sanity_note(report, result.method, view.modality)
    if note:
        st.markdown(note)
    delta = result.metadata.get("convergence_delta")
    difference = result.metadata.get("difference")
    if result.method == "integrated_gradients" and delta is not None and abs(delta) > 0.05 * max(abs(difference), 1e-3):
        st.caption(
            f"Convergence delta {delta:+.3f} vs f(x) − f(baseline) {difference:+.3f}: raise the IG steps for a closer integral."
        )
    view.render_attribution(result, sample, loaded.model, key=f"{result.method}_{view.modality}", opacity=opacity)


def is_attention_fusion(loaded: LoadedCheckpoint) -> bool:
    return isinstance(loaded.model.fusion, AttentionFusion)


def render_attention(loaded: LoadedCheckpoint, sample: CurrentSample, dataset: Dataset | None) -> None:
    """Attention between the modality tokens: for this sample, or averaged over the test split."""
    scope = st.radio(
        "Attention of",
        ["this sample", "the test split (average)"],
        horizontal=True,
        key="explain_attention_scope",
        help="The split average uses the cached embeddings of every test row.",
    )
    if scope == "this sample":
        maps = sample_attention(loaded.model, sample.decoded)
    elif dataset is None:
        st.info("Load a dataset in the sidebar to average attention over its test split.")
        return
    else:
        maps = loaders.split_attention_maps(
            str(loaded.path), loaded.card.sha256, str(dataset.root), dataset.fingerprint
        )
    st.plotly_chart(trust_figures.attention_figure(maps), config=PLOTLY_CONFIG, key="attention_maps")
    st.caption(
        "Rows attend to columns. [CLS]'s row is what the fused vector is built from. "
        f"Reproduced from the model's own layers (largest difference from its forward: {maps.max_abs_error:.1e})."
    )


def cached_report(loaded: LoadedCheckpoint, dataset: Dataset | None, task: str | None) -> TrustReport | None:
    """The checkpoint's method assessment for ``task`` if it was computed before (core's disk
    cache), else ``None``."""
    return cached_assessment(loaded, dataset, replace(ASSESSMENT, task=task)) if dataset is not None else None


def _assessment(loaded: LoadedCheckpoint, dataset: Dataset, task: str | None) -> TrustReport | None:
    """The checkpoint's method assessment: from the disk cache, or computed now if the user asked."""
    report = cached_report(loaded, dataset, task)
    if report is not None:
        return report
    options = replace(ASSESSMENT, task=task)
    asked = st.session_state.setdefault("explain_assess", set())
    if (loaded.card.sha256, task) not in asked:
        st.markdown(
            f"Sanity checks and stability are measured per checkpoint on {ASSESSMENT.samples} {ASSESSMENT.split} rows "
            f"({ASSESSMENT.sanity_samples} for the randomisation and noise checks), then cached."
        )
        if st.button("Check the methods on this checkpoint", key="explain_assess_button", icon=":material/fact_check:"):
            asked.add((loaded.card.sha256, task))
            st.rerun()
        return None
    key = ("assessment", loaded.card.sha256, dataset.fingerprint, options.key())
    job = job_registry().submit(
        key,
        lambda progress, cancel: assess_methods(loaded, dataset, options, progress=progress, cancel=cancel),
        owner=current_user(),
        session=session_id(),
    )
    finished_before = job.done
    report = follow(job, "Checking every method on this checkpoint")
    if report is not None and not finished_before:
        st.rerun()  # the verdicts also go next to the maps, drawn above this panel
    return report


def render_trust_panel(
    results: dict[str, Explanation], loaded: LoadedCheckpoint, dataset: Dataset | None, task: str | None
) -> None:
    """Faithfulness and agreement on this sample; sanity checks, stability and the ranking on the checkpoint."""
    curves = [r for r in results.values() if r.faithfulness is not None]
    st.markdown("##### Faithfulness on this sample")
    if curves:
        st.plotly_chart(explanation_figures.faithfulness_curves(curves), config=PLOTLY_CONFIG, key="trust_faithfulness")
        st.dataframe(trust_figures.faithfulness_table(results, LABELS), hide_index=True)
        st.caption(
            "Removing the most-attributed segments first should drop the probability faster than a random order "
            "(lower deletion AUC), and keeping only them should restore it faster (higher insertion AUC)."
        )
    st.markdown("##### Agreement between methods on this sample")
    if sum(1 for r in results.values() if r.segment_scores) > 1:
        st.plotly_chart(trust_figures.agreement_figure(results, LABELS), config=PLOTLY_CONFIG, key="trust_agreement")
    else:
        st.caption("Pick at least two methods to compare them.")
    st.markdown("##### Sanity checks and stability on this checkpoint")
    if dataset is None:
        st.info("Load a dataset in the sidebar: the checks run on its test rows.")
        return
    report = _assessment(loaded, dataset, task)
    if report is None:
        return
    st.markdown(trust_figures.recommendation_text(report))
    st.dataframe(trust_figures.ranking_table(report), hide_index=True)
    st.dataframe(trust_figures.sanity_table(report), hide_index=True)
    st.caption(
        f"{len(report.rows)} {report.split} rows, {len(report.sanity_rows)} of them for the randomisation and noise "
        f"checks · computed in {report.runtime_s:.0f} s on {report.device}. **Model randomisation**: the weights are "
        "re-initialised from the head down to the encoders' first layers; a method passes when its maps then "
        "correlate below 0.5 with the trained model's. **Data randomisation**: the fusion head retrained on shuffled "
        "labels. **Max-sensitivity**: the largest relative change of the map under slight pixel and waveform noise. "
        "**Seed ρ / sign flips**: sampling methods rerun with other seeds. The control ignores the model on purpose "
        "and must fail."
    )
