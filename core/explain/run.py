"""``explain()``: the entry point the CLI, the dashboard and batch jobs share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from core.errors import ExplanationError
from core.explain.engine import CancelFlag, PerturbationEngine, ProgressCallback
from core.explain.params import ExplainParams
from core.explain.quality import agreement, faithfulness
from core.explain.registry import EXPLAINERS
from core.explain.result import Explanation
from core.model import MultimodalClassifier
from core.sample import DecodedSample


def resolve_target(classes: Sequence[str], target: int | str | None, probabilities: np.ndarray) -> int:
    """Class index from an index, a class name, or ``None`` (the predicted class).

    Raises:
        ExplanationError: a class the model does not know.
    """
    if target is None:
        return int(np.argmax(probabilities))
    if isinstance(target, str) and target in classes:
        return list(classes).index(target)
    if isinstance(target, str) and target.lstrip("-").isdigit():
        target = int(target)
    if isinstance(target, int) and 0 <= target < len(classes):
        return target
    shown = ", ".join(classes[:20]) + (", ..." if len(classes) > 20 else "")
    raise ExplanationError(f"Unknown target class {target!r}; the model's classes are {shown}.")


def resolve_methods(methods: str | Sequence[str]) -> list[str]:
    """``"all"``, one method name, or several, in registry order.

    Raises:
        ExplanationError: an unknown method.
    """
    names = list(EXPLAINERS) if methods == "all" else [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in names if m not in EXPLAINERS]
    if unknown or not names:
        raise ExplanationError(
            f"Unknown explanation method {', '.join(map(repr, unknown)) or '(none)'}; "
            f"choose {', '.join(EXPLAINERS)} or all."
        )
    return [m for m in EXPLAINERS if m in names]


def explain(
    loaded_or_model,
    sample: DecodedSample,
    methods: str | Sequence[str] = "all",
    target: int | str | None = None,
    params: ExplainParams | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    task: str | None = None,
) -> dict[str, Explanation]:
    """Explain ``sample``'s prediction by one or more methods.

    Args:
        loaded_or_model: a loaded checkpoint (its hash goes into the metadata) or a model.
            The model is only read: never put in train mode, hooked or modified.
        sample: decoded sample; modalities the model does not use are ignored.
        methods: a name of :data:`~core.explain.registry.EXPLAINERS`, several, or ``"all"``.
        target: class (or label) index or name to explain; ``None`` = the most probable one.
        params: segmentation, sampling and batching settings (``None``: the defaults).
        progress: called with the fraction done (0..1), from the calling thread.
        cancel: ``threading.Event`` or callable; when set, raises :class:`~core.errors.Cancelled`
            before the next batch of perturbations.
        task: the task whose output is explained (default: the model's primary task).

    Returns:
        Method name -> :class:`Explanation`, always a dict. Segment-based results carry
        faithfulness curves; with both SHAP and LIME, their metadata holds ``"agreement"``
        (Spearman per modality between their segment scores).

    Raises:
        ExplanationError: unknown method, task or class, or none of the model's modalities in the sample.
    """
    names = resolve_methods(methods)
    params = params or ExplainParams()
    model: MultimodalClassifier = getattr(loaded_or_model, "model", loaded_or_model)
    engine = PerturbationEngine(model, sample, params, cancel=cancel, task=task)
    engine.check_cancel()
    chosen = resolve_target(engine.task.classes, target, engine.probabilities)
    explained = [m for m in engine.modalities if params.modalities is None or m in params.modalities]
    if not explained and any(EXPLAINERS[name].needs_modalities for name in names):
        raise ExplanationError("None of the requested modalities is present in the sample.")
    costs = [max(EXPLAINERS[name].cost(params, len(explained)), 1e-9) for name in names]
    done = 0.0
    results: dict[str, Explanation] = {}
    for name, cost in zip(names, costs, strict=True):
        engine.progress = _scaled(progress, done / sum(costs), cost / sum(costs))
        results[name] = _run(engine, name, chosen, explained)
        done += cost
        if progress is not None:
            progress(done / sum(costs))
    if "shap" in results and "lime" in results:
        scores = agreement(results["shap"], results["lime"])
        results["shap"].metadata["agreement"] = scores
        results["lime"].metadata["agreement"] = scores
    card = getattr(loaded_or_model, "card", None)
    if card is not None:
        for result in results.values():
            result.metadata["checkpoint"] = {"name": loaded_or_model.name, "sha256": card.sha256}
    return results


def _run(engine: PerturbationEngine, name: str, target: int, modalities: list[str]) -> Explanation:
    explainer = EXPLAINERS[name]
    result = explainer.explain(engine, target, modalities)
    if explainer.segment_scores:
        result.faithfulness = faithfulness(engine, result)
        result.metadata["evaluations_with_faithfulness"] = result.metadata["evaluations"] + 4 * (
            engine.params.faithfulness_steps + 1
        )
    return result


def _scaled(progress: ProgressCallback | None, start: float, span: float) -> Callable[[float], None] | None:
    if progress is None:
        return None
    return lambda fraction: progress(start + span * fraction)
