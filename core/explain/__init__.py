"""Explanations of one sample's prediction: modality Shapley, SHAP and LIME.

``explain(loaded_or_model, sample, methods)`` is the entry point for the CLI and the
dashboard; it always returns ``{method: Explanation}``. Every method implements
:class:`~core.explain.base.Explainer` and is found in :data:`~core.explain.registry.EXPLAINERS`;
all run on one :class:`~core.explain.engine.PerturbationEngine`, so the sample is
encoded once and only perturbed modalities are re-encoded.

>>> explain(loaded, sample, "modality")["modality"].modality_totals  # doctest: +SKIP
{'audio': 0.02, 'image': 0.41, 'text': 0.18}
"""

from typing import TYPE_CHECKING

from core.lazy import lazy_exports

EXPLAINER_NAMES = ("modality", "shap", "lime", "integrated_gradients", "gradient_shap", "grad_cam")
"""Every method's name, in the order ``"all"`` runs them, known without importing torch (the
command line's choices); :mod:`core.explain.registry` checks it against the explainers."""

RANKED_METHODS = ("shap", "lime", "integrated_gradients", "gradient_shap", "grad_cam")
"""The methods the trust assessment (:mod:`core.explain.trust`) ranks: those scoring segments."""

if TYPE_CHECKING:
    from core.explain.base import Explainer
    from core.explain.engine import PerturbationEngine
    from core.explain.params import ExplainParams
    from core.explain.quality import agreement, faithfulness
    from core.explain.registry import EXPLAINERS
    from core.explain.result import Explanation, FaithfulnessCurves
    from core.explain.run import explain, resolve_methods, resolve_target
    from core.explain.segmentation import SEGMENTATIONS

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "base": ["Explainer"],
        "engine": ["PerturbationEngine"],
        "params": ["ExplainParams"],
        "quality": ["agreement", "faithfulness"],
        "registry": ["EXPLAINERS"],
        "result": ["Explanation", "FaithfulnessCurves"],
        "run": ["explain", "resolve_methods", "resolve_target"],
        "segmentation": ["SEGMENTATIONS"],
    },
)
__all__ = [
    "EXPLAINERS",
    "EXPLAINER_NAMES",
    "Explainer",
    "Explanation",
    "ExplainParams",
    "FaithfulnessCurves",
    "PerturbationEngine",
    "RANKED_METHODS",
    "SEGMENTATIONS",
    "agreement",
    "explain",
    "faithfulness",
    "resolve_methods",
    "resolve_target",
]
