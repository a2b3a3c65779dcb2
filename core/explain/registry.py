"""Every explanation method, by name: adding one is one new module and one line here."""

from __future__ import annotations

from core.explain import EXPLAINER_NAMES, RANKED_METHODS
from core.explain.base import Explainer
from core.explain.grad_cam import GradCamExplainer
from core.explain.gradient_shap import GradientShapExplainer
from core.explain.integrated_gradients import IntegratedGradientsExplainer
from core.explain.lime_explainer import LimeExplainer
from core.explain.modality_shapley import ModalityShapley
from core.explain.shap_explainer import ShapExplainer

EXPLAINERS: dict[str, Explainer] = {
    e.name: e
    for e in (
        ModalityShapley(),
        ShapExplainer(),
        LimeExplainer(),
        IntegratedGradientsExplainer(),
        GradientShapExplainer(),
        GradCamExplainer(),
    )
}
"""Method name -> explainer, in the order ``"all"`` runs them (:data:`~core.explain.EXPLAINER_NAMES`)."""

if tuple(EXPLAINERS) != EXPLAINER_NAMES:
    raise ImportError(f"core.explain.EXPLAINER_NAMES {EXPLAINER_NAMES} does not list the explainers {tuple(EXPLAINERS)}.")
if not set(RANKED_METHODS) <= {name for name, e in EXPLAINERS.items() if e.segment_scores}:
    raise ImportError(f"core.explain.RANKED_METHODS {RANKED_METHODS} names a method that scores no segments.")


def method_label(method: str) -> str:
    """How figures and pages name a method ("Integrated Gradients"); unknown names as they are."""
    explainer = EXPLAINERS.get(method)
    return explainer.label if explainer is not None else method
