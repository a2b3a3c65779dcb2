"""Explanations of one sample's prediction: modality Shapley, SHAP and LIME.

``explain(loaded_or_model, sample, method)`` is the entry point for the CLI and the
dashboard. Every method runs on one :class:`~core.explain.engine.PerturbationEngine`,
so the sample is encoded once and only perturbed modalities are re-encoded.

>>> result = explain(loaded, sample, "modality")            # doctest: +SKIP
>>> result.modality_totals                                  # doctest: +SKIP
{'audio': 0.02, 'image': 0.41, 'text': 0.18}
"""

from __future__ import annotations

from collections.abc import Callable

from core.checkpoints import LoadedCheckpoint
from core.explain.engine import CancelFlag, PerturbationEngine, ProgressCallback
from core.explain.lime_explainer import lime_explanation
from core.explain.modality_shapley import modality_shapley
from core.explain.params import ExplainParams
from core.explain.quality import agreement, corrupted_modality_credit, faithfulness
from core.explain.result import Explanation, ExplanationCancelled, FaithfulnessCurves
from core.explain.segmentation import SEGMENTATIONS
from core.explain.shap_explainer import shap_explanation
from core.model import MultimodalClassifier
from core.sample import DecodedSample

METHODS = ("modality", "shap", "lime")
"""Methods in the order ``method="all"`` runs them."""

# Rough relative cost of each method per unit, to split one progress bar between them.
_COST = {
    "modality": lambda p, n: 1.0,
    "shap": lambda p, n: float(p.shap_evals),
    "lime": lambda p, n: float(p.lime_samples * n),
}

__all__ = [
    "METHODS",
    "Explanation",
    "ExplanationCancelled",
    "ExplainParams",
    "FaithfulnessCurves",
    "PerturbationEngine",
    "SEGMENTATIONS",
    "agreement",
    "corrupted_modality_credit",
    "explain",
    "faithfulness",
]


def resolve_target(model: MultimodalClassifier, target: int | str | None, probabilities) -> int:
    """Class index from an index, a class name, or ``None`` (the predicted class)."""
    if target is None:
        return int(probabilities.argmax())
    if isinstance(target, str) and target in model.classes:
        return model.classes.index(target)
    if isinstance(target, str) and target.lstrip("-").isdigit():
        target = int(target)
    if isinstance(target, int) and 0 <= target < len(model.classes):
        return target
    raise ValueError(f"Unknown target class {target!r}; the model's classes are {', '.join(model.classes)}.")


def explain(
    loaded_or_model: LoadedCheckpoint | MultimodalClassifier,
    sample: DecodedSample,
    method: str = "all",
    target: int | str | None = None,
    params: ExplainParams | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> Explanation | dict[str, Explanation]:
    """Explain ``sample``'s prediction by ``method``.

    Args:
        loaded_or_model: a loaded checkpoint (its hash goes into the metadata) or a model.
            The model is only read: never put in train mode, hooked or modified.
        sample: decoded sample; modalities the model does not use are ignored.
        method: ``"modality"``, ``"shap"``, ``"lime"`` or ``"all"``.
        target: class index or name to explain; ``None`` = the predicted class.
        params: segmentation, sampling and batching settings (``None``: the defaults).
        progress: called with the fraction done (0..1), from the calling thread.
        cancel: ``threading.Event`` or callable; when set, raises :class:`ExplanationCancelled`
            before the next batch of perturbations.

    Returns:
        One :class:`Explanation`, or for ``"all"`` a dict ``method -> Explanation``; SHAP
        and LIME results carry faithfulness curves, and with ``"all"`` their metadata holds
        ``"agreement"`` (Spearman per modality between SHAP and LIME segment scores).
    """
    if method not in (*METHODS, "all"):
        raise ValueError(f"Unknown explanation method {method!r}; choose modality, shap, lime or all.")
    params = params or ExplainParams()
    model = loaded_or_model.model if isinstance(loaded_or_model, LoadedCheckpoint) else loaded_or_model
    engine = PerturbationEngine(model, sample, params, cancel=cancel)
    engine.check_cancel()
    chosen_target = resolve_target(model, target, engine.probabilities)
    explained = [m for m in engine.modalities if params.modalities is None or m in params.modalities]
    methods = list(METHODS) if method == "all" else [method]
    costs = [_COST[m](params, len(explained)) for m in methods]
    done = 0.0
    results: dict[str, Explanation] = {}
    for name, cost in zip(methods, costs, strict=True):
        engine.progress = _scaled(progress, done / sum(costs), cost / sum(costs))
        results[name] = _run_method(engine, name, chosen_target, explained)
        done += cost
        if progress is not None:
            progress(done / sum(costs))
    if "shap" in results and "lime" in results:
        scores = agreement(results["shap"], results["lime"])
        results["shap"].metadata["agreement"] = scores
        results["lime"].metadata["agreement"] = scores
    if isinstance(loaded_or_model, LoadedCheckpoint):
        for result in results.values():
            result.metadata["checkpoint"] = {
                "name": loaded_or_model.name,
                "sha256": loaded_or_model.card["weights"]["sha256"],
            }
    return results if method == "all" else results[method]


def _run_method(engine: PerturbationEngine, method: str, target: int, modalities: list[str]) -> Explanation:
    if method == "modality":
        return modality_shapley(engine, target, include_logit=engine.params.include_logit)
    if not modalities:
        raise ValueError("None of the requested modalities is present in the sample.")
    explainer = shap_explanation if method == "shap" else lime_explanation
    result = explainer(engine, target, modalities)
    result.faithfulness = faithfulness(engine, result)
    result.metadata["evaluations_with_faithfulness"] = result.metadata["evaluations"] + 4 * (
        engine.params.faithfulness_steps + 1
    )
    return result


def _scaled(progress: ProgressCallback | None, start: float, span: float) -> Callable[[float], None] | None:
    if progress is None:
        return None
    return lambda fraction: progress(start + span * fraction)
