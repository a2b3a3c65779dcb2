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
    "Explainer",
    "Explanation",
    "ExplainParams",
    "FaithfulnessCurves",
    "PerturbationEngine",
    "SEGMENTATIONS",
    "agreement",
    "explain",
    "faithfulness",
    "resolve_methods",
    "resolve_target",
]
