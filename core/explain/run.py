"""``explain()``: the entry point the CLI, the dashboard and batch jobs share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from core.errors import ExplanationError, MethodNotApplicableError, user_message
from core.explain.base import Explainer
from core.explain.engine import CancelFlag, PerturbationEngine, ProgressCallback
from core.explain.params import ExplainParams
from core.explain.quality import agreement, faithfulness
from core.explain.registry import EXPLAINERS
from core.explain.result import Explanation
from core.model import MultimodalClassifier
from core.sample import DecodedSample

NO_MODALITY = "None of the requested modalities is present in the sample."


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
    *,
    quality: bool = True,
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
        quality: attach faithfulness curves and agreement (``False``: the attributions alone,
            e.g. for sanity checks that recompute them many times).

    Returns:
        Method name -> :class:`Explanation`, always a dict. Segment-based results carry
        faithfulness curves, and ``metadata["agreement"]``: for every other segment-based
        result, the Spearman correlation of their segment scores per modality
        (``{"lime": {"image": 0.61, ...}, ...}``). A method that does not apply to this model
        or sample (Grad-CAM without a convolutional image encoder, gradients with nothing
        differentiable) gives a result with no attributions and ``metadata["not_applicable"]``
        saying why.

    Raises:
        ExplanationError: unknown method, task or class, or none of the model's modalities in the sample.
    """
    names = resolve_methods(methods)
    params = params or ExplainParams()
    model: MultimodalClassifier = getattr(loaded_or_model, "model", loaded_or_model)
    engine = PerturbationEngine(model, sample, params, cancel=cancel, task=task)
    engine.check_cancel()
    chosen = resolve_target(engine.task.classes, target, engine.probabilities)
    explained = explained_modalities(engine)
    if not explained and any(EXPLAINERS[name].needs_modalities for name in names):
        raise ExplanationError(NO_MODALITY)
    costs = [max(EXPLAINERS[name].cost(params, len(explained)), 1e-9) for name in names]
    done = 0.0
    results: dict[str, Explanation] = {}
    for name, cost in zip(names, costs, strict=True):
        engine.progress = _scaled(progress, done / sum(costs), cost / sum(costs))
        results[name] = run_explainer(engine, EXPLAINERS[name], chosen, explained, quality=quality)
        done += cost
        if progress is not None:
            progress(done / sum(costs))
    if quality:
        _attach_agreement(results)
    card = getattr(loaded_or_model, "card", None)
    if card is not None:
        for result in results.values():
            result.metadata["checkpoint"] = {"name": loaded_or_model.name, "sha256": card.sha256}
    return results


def explained_modalities(engine: PerturbationEngine) -> list[str]:
    """The sample's modalities that ``engine.params.modalities`` asks to explain."""
    wanted = engine.params.modalities
    return [m for m in engine.modalities if wanted is None or m in wanted]


def run_explainer(
    engine: PerturbationEngine, explainer: Explainer, target: int, modalities: list[str], *, quality: bool = True
) -> Explanation:
    """One method on one engine; a method that does not apply gives a result saying why.

    Raises:
        ExplanationError: the method needs modalities and none is present.
    """
    if explainer.needs_modalities and not modalities:
        raise ExplanationError(NO_MODALITY)
    try:
        result = explainer.explain(engine, target, modalities)
    except MethodNotApplicableError as err:
        result = engine.attribution(explainer.name, target, {})
        result.metadata.update({"not_applicable": user_message(err), "evaluations": 0, "runtime_s": 0.0})
        return result
    if quality and explainer.segment_scores and result.segment_scores:
        result.faithfulness = faithfulness(engine, result)
        result.metadata["evaluations_with_faithfulness"] = result.metadata["evaluations"] + 4 * (
            engine.params.faithfulness_steps + 1
        )
    return result


def _attach_agreement(results: dict[str, Explanation]) -> None:
    scored = {name: r for name, r in results.items() if r.segment_scores and EXPLAINERS[name].segment_scores}
    for name, result in scored.items():
        others = {other: agreement(result, r) for other, r in scored.items() if other != name}
        if others:
            result.metadata["agreement"] = others


def _scaled(progress: ProgressCallback | None, start: float, span: float) -> Callable[[float], None] | None:
    if progress is None:
        return None
    return lambda fraction: progress(start + span * fraction)
