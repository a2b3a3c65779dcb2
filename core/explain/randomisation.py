"""Randomisation sanity checks: does an attribution method explain the MODEL, or only the input?

Adebayo et al. (2018), "Sanity Checks for Saliency Maps": an attribution that explains
what a model learned must change when what it learned is destroyed.

- Model-parameter randomisation (:func:`cascading_randomisation`): a deep copy of the model
  is re-initialised from the top (head, then fusion, then every encoder's layers from the
  last to the first, cumulatively); after each step the attribution is recomputed and its
  Spearman rank correlation with the trained model's is averaged over the samples, per modality.
- Data randomisation (:func:`data_randomisation`): the fusion and head are retrained on
  SHUFFLED labels from cached embeddings (seconds; the encoders stay as trained), and the
  attributions of that model are compared with the trained model's the same way.

A modality FAILS when the correlation stays at or above ``max_correlation``: the maps barely
change, so they reflect the input rather than the model.
:class:`~core.explain.input_only.InputOnlyExplainer` is such a method, on purpose, as the control.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from core.embeddings import EmbeddedRecords
from core.errors import ExplanationError
from core.explain.base import Explainer
from core.explain.engine import PerturbationEngine
from core.explain.params import ExplainParams
from core.explain.quality import rank_correlation
from core.explain.registry import EXPLAINERS
from core.explain.result import Explanation
from core.explain.run import explained_modalities, resolve_target, run_explainer
from core.model import MultimodalClassifier
from core.sample import DecodedSample
from core.serialization import JsonMixin
from core.train.loss import MultiTaskLoss

AttributionFunction = Callable[[MultimodalClassifier, DecodedSample, "int | str | None"], Explanation]
"""``attribute(model, sample, target) -> Explanation``: what the checks recompute (``target``
``None``: the class the model predicts; the result's ``target`` says which one it was)."""


def attribution_function(
    method: str | Explainer, params: ExplainParams | None = None, task: str | None = None
) -> AttributionFunction:
    """``attribute(model, sample, target)`` for a registered method name or an :class:`Explainer`
    (e.g. the control) on ``task`` (default: the primary one), without quality checks (the
    sanity checks only need the attributions)."""
    explainer = method if isinstance(method, Explainer) else EXPLAINERS.get(method)
    if explainer is None:
        raise ExplanationError(f"Unknown explanation method {method!r}; choose {', '.join(EXPLAINERS)}.")
    params = params or ExplainParams()

    def attribute(model: MultimodalClassifier, sample: DecodedSample, target: int | str | None) -> Explanation:
        engine = PerturbationEngine(model, sample, params, task=task)
        chosen = resolve_target(engine.task.classes, target, engine.probabilities)
        return run_explainer(engine, explainer, chosen, explained_modalities(engine), quality=False)

    return attribute


def compared_scores(result: Explanation, compare: str) -> dict[str, np.ndarray]:
    """What the checks compare: ``"segments"`` (segment scores: equal footing for every
    method) or ``"maps"`` (image pixels, audio grid, token scores)."""
    return dict(result.segment_scores) if compare == "segments" else result.maps()


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


# ---------------------------------------------------------------------- model randomisation
def randomise_module_(module: nn.Module, generator: torch.Generator) -> list[str]:
    """Re-initialise the parameters owned directly by ``module`` (not its children), in place.

    Matrices and kernels get PyTorch's default ``nn.Linear``/``nn.Conv`` initialisation
    (Kaiming-uniform, ``a = sqrt(5)``); vectors (biases, norm scales, missing-modality and
    [CLS] embeddings) are randomly permuted, which keeps their scale but destroys what was
    learned per unit. Drawn from ``generator``, so the global RNG is untouched. Returns the
    names of the parameters changed.
    """
    changed = []
    with torch.no_grad():
        for name, parameter in module.named_parameters(recurse=False):
            if parameter.dim() >= 2:
                fresh = torch.empty(parameter.shape, dtype=torch.float32)
                nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)
            elif parameter.numel() > 1:
                flat = parameter.detach().float().cpu().reshape(-1)
                fresh = flat[torch.randperm(flat.numel(), generator=generator)].reshape(parameter.shape)
            else:
                continue
            parameter.copy_(fresh.to(parameter.device, parameter.dtype))
            changed.append(name)
    return changed


def _owners(module: nn.Module, prefix: str) -> list[str]:
    """Names of the submodules of ``module`` that own parameters directly, in registration order."""
    return [
        f"{prefix}.{name}" if name else prefix
        for name, sub in module.named_modules()
        if any(True for _ in sub.parameters(recurse=False))
    ]


def randomisation_steps(model: MultimodalClassifier, max_encoder_steps: int = 4) -> list[tuple[str, list[str]]]:
    """The cascade, top first: ``[(step name, [module names randomised at this step])]``.

    Head (when it has parameters), fusion, then encoder layers from the last to the first:
    step k re-initialises the k-th group of layers from the top of EVERY encoder (each
    encoder's parameter-owning modules are split into at most ``max_encoder_steps`` groups,
    so large pretrained encoders take as many steps as small ones).
    """
    steps: list[tuple[str, list[str]]] = []
    head = _owners(model.head, "head")
    if head:
        steps.append(("head", head))
    steps.append(("fusion", _owners(model.fusion, "fusion")))
    groups: dict[str, list[list[str]]] = {}
    for m in model.modalities:
        layers = list(reversed(_owners(model.encoders[m], f"encoders.{m}")))
        if layers:
            groups[m] = [
                list(g) for g in np.array_split(np.array(layers, dtype=object), min(max_encoder_steps, len(layers)))
            ]
    depth = max((len(g) for g in groups.values()), default=0)
    for k in range(depth):
        names = [name for m in groups if k < len(groups[m]) for name in groups[m][k]]
        label = "encoders: " + ", ".join(f"{m} {k + 1}/{len(groups[m])}" for m in groups if k < len(groups[m]))
        steps.append((label, names))
    return steps


@dataclass
class RandomisationStep(JsonMixin):
    """One step of a randomisation check: what was changed, and per modality the Spearman rank
    correlation with the trained model's attribution, averaged over the samples
    (``abs_correlations``: of the absolute values; ``per_sample``: each sample's)."""

    name: str
    modules: list[str]
    correlations: dict[str, float]
    abs_correlations: dict[str, float]
    per_sample: list[dict[str, float]]
    runtime_s: float


@dataclass
class RandomisationReport(JsonMixin):
    """Result of :func:`cascading_randomisation` or :func:`data_randomisation`.

    Attributes:
        method: the method checked.
        test: ``"model"`` (cascading parameter randomisation) or ``"data"`` (shuffled labels).
        targets: the class explained for each sample (the same at every step).
        criterion: ``"mean"`` (the correlation averaged over the steps) or ``"final"`` (the last step).
        passed: per modality, ``True`` when the criterion's correlation is below
            ``max_correlation``, ``False`` when the attributions stay at least that similar to
            the trained model's (the method fails), ``None`` when not judged (fewer than
            ``min_segments`` units in every sample, or constant scores).
        score: per modality, the correlation the verdict is based on.
    """

    method: str
    test: str
    targets: list[int]
    compared_on: str
    criterion: str
    max_correlation: float
    steps: list[RandomisationStep]
    passed: dict[str, bool | None]
    score: dict[str, float]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def passes(self) -> bool:
        """Every judged modality passed (and at least one was judged)."""
        judged = [v for v in self.passed.values() if v is not None]
        return bool(judged) and all(judged)

    def final_correlations(self) -> dict[str, float]:
        """Per modality, the mean rank correlation at the last step."""
        return dict(self.steps[-1].correlations) if self.steps else {}


class _Comparison:
    """The trained model's attributions of some samples, and their correlations with another model's."""

    def __init__(
        self,
        model: MultimodalClassifier,
        samples: DecodedSample | Sequence[DecodedSample],
        attribute: AttributionFunction,
        target: int | str | None,
        compare: str,
        min_segments: int,
    ):
        if compare not in ("segments", "maps"):
            raise ExplanationError("compare must be 'segments' or 'maps'")
        self.samples = [samples] if isinstance(samples, DecodedSample) else list(samples)
        if not self.samples:
            raise ExplanationError("No samples to explain.")
        self.attribute, self.compare = attribute, compare
        self.references = [attribute(model, s, target) for s in self.samples]
        self.targets = [r.target for r in self.references]
        self.reference_scores = [compared_scores(r, compare) for r in self.references]
        self.modalities = sorted({m for scores in self.reference_scores for m in scores})
        self.counted = [
            {m for m, a in scores.items() if np.asarray(a).size >= min_segments and np.ptp(np.asarray(a)) > 0}
            for scores in self.reference_scores
        ]

    def step(self, name: str, modules: list[str], other: MultimodalClassifier) -> RandomisationStep:
        started = time.perf_counter()
        per_sample, per_sample_abs = [], []
        for sample, target, reference in zip(self.samples, self.targets, self.reference_scores, strict=True):
            scores = compared_scores(self.attribute(other, sample, target), self.compare)
            empty = np.zeros(0)
            per_sample.append({m: rank_correlation(reference[m], scores.get(m, empty)) for m in reference})
            per_sample_abs.append(
                {m: rank_correlation(np.abs(reference[m]), np.abs(scores.get(m, empty))) for m in reference}
            )

        def averaged(rows: list[dict[str, float]]) -> dict[str, float]:
            return {
                m: _mean([r[m] for r, use in zip(rows, self.counted, strict=True) if m in use]) for m in self.modalities
            }

        return RandomisationStep(
            name, modules, averaged(per_sample), averaged(per_sample_abs), per_sample, time.perf_counter() - started
        )

    def report(
        self, method: str | None, test: str, steps: list[RandomisationStep], criterion: str, max_correlation: float
    ) -> RandomisationReport:
        score = {
            m: (_mean([s.correlations[m] for s in steps]) if criterion == "mean" else steps[-1].correlations[m])
            for m in self.modalities
        }
        return RandomisationReport(
            method=method or self.references[0].method,
            test=test,
            targets=self.targets,
            compared_on=self.compare,
            criterion=criterion,
            max_correlation=max_correlation,
            steps=steps,
            passed={m: bool(v < max_correlation) if np.isfinite(v) else None for m, v in score.items()},
            score=score,
            metadata={"samples": len(self.samples)},
        )


def cascading_randomisation(
    model: MultimodalClassifier,
    samples: DecodedSample | Sequence[DecodedSample],
    attribute: AttributionFunction,
    target: int | str | None = None,
    *,
    method: str | None = None,
    max_correlation: float = 0.5,
    criterion: str = "mean",
    min_segments: int = 4,
    max_encoder_steps: int = 4,
    compare: str = "segments",
    seed: int = 0,
) -> RandomisationReport:
    """Model-parameter randomisation test of an attribution function.

    Args:
        model: the trained classifier (never modified: the cascade runs on a deep copy).
        samples: one sample or several; correlations are averaged over them (a short text
            has few tokens, and the rank correlation of five numbers is mostly noise).
        attribute: ``attribute(model, sample, target) -> Explanation`` (:func:`attribution_function`).
        target: the class explained for every sample at every step (``None``: each sample's
            class predicted by the trained model).
        method: name for the report (default: the reference explanations' ``method``).
        max_correlation: a modality passes when its (signed) Spearman correlation with the
            trained model's attributions, averaged over the samples, is below this ...
        criterion: ... averaged over the cascade's steps (``"mean"``: "the maps stay similar
            while the model is destroyed" is a statement about the whole cascade), or at its
            last step only (``"final"``).
        min_segments: samples whose modality has fewer units do not count for it.
        max_encoder_steps: groups per encoder (see :func:`randomisation_steps`).
        compare: ``"segments"`` or ``"maps"`` (see :func:`compared_scores`).
        seed: seeds the re-initialisation.
    """
    if criterion not in ("mean", "final"):
        raise ExplanationError("criterion must be 'mean' or 'final'")
    started = time.perf_counter()
    comparison = _Comparison(model, samples, attribute, target, compare, min_segments)
    randomised = deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    steps = []
    for name, modules in randomisation_steps(randomised, max_encoder_steps):
        for module_name in modules:
            randomise_module_(randomised.get_submodule(module_name), generator)
        steps.append(comparison.step(name, modules, randomised))
    report = comparison.report(method, "model", steps, criterion, max_correlation)
    report.metadata.update({"runtime_s": time.perf_counter() - started, "seed": seed, "min_segments": min_segments})
    return report


# ---------------------------------------------------------------------- data randomisation
def shuffled_label_model(
    model: MultimodalClassifier,
    train: EmbeddedRecords,
    targets: tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    task: str | None = None,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[MultimodalClassifier, dict[str, float]]:
    """A copy of ``model`` whose fusion and head are re-initialised and trained on SHUFFLED targets
    of ``task`` (default: the primary one).

    The encoders stay as trained (their embeddings come from ``train``, e.g. cached by
    :func:`core.embeddings.embed_records`), so this trains in seconds. ``targets`` are the
    task's ``(y, known)`` rows (:meth:`core.tasks.Task.encode`); default: ``train.labels``, the
    primary task's. Returns the model (eval mode, gradients off) and ``{"train_accuracy", ...}``:
    how well it memorised the shuffled targets (for a multi-label task, per label).
    """
    started = time.perf_counter()
    chosen = model.task(task)
    if targets is None:
        if chosen is not model.tasks[0]:
            raise ExplanationError(f"Give the targets of the task {chosen.name!r} to retrain on them shuffled.")
        targets = (train.labels, train.labels >= 0)
    y, known = (torch.as_tensor(t) for t in targets)
    rows = known.nonzero().flatten()
    if len(rows) < 2:
        raise ExplanationError("Retraining on shuffled labels needs at least two labelled training rows.")
    generator = torch.Generator().manual_seed(seed)
    shuffled = y[rows][torch.randperm(len(rows), generator=generator)]
    copy = deepcopy(model)
    trained = [copy.fusion, copy.head]
    for part, prefix in zip(trained, ("fusion", "head"), strict=True):
        for name in _owners(part, prefix):
            randomise_module_(copy.get_submodule(name), generator)
        part.requires_grad_(True)
    optimizer = torch.optim.Adam([p for part in trained for p in part.parameters()], lr=lr)
    loss = MultiTaskLoss([chosen])
    block = model.task_slices[chosen.name]
    device = copy.device
    embeddings = {m: e[rows].to(device) for m, e in train.embeddings.items()}
    present = train.present[rows].to(device)
    shuffled = shuffled.to(device)
    everywhere = torch.ones(len(rows), dtype=torch.bool, device=device)
    copy.train()
    with torch.inference_mode(False), torch.enable_grad():
        for _ in range(epochs):
            for batch in torch.randperm(len(rows), generator=generator).split(batch_size):
                batch = batch.to(device)
                outputs = copy.classify({m: e[batch] for m, e in embeddings.items()}, present[batch])[:, block]
                value = loss(outputs, {chosen.name: (shuffled[batch], everywhere[batch])})
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
    copy.eval()
    copy.requires_grad_(False)
    with torch.inference_mode():
        outputs = copy.classify(embeddings, present)[:, block].float()
    predicted = (outputs > 0).float() if chosen.multi_label else outputs.argmax(dim=-1)
    accuracy = float((predicted == shuffled).float().mean())
    return copy, {"train_accuracy": accuracy, "epochs": epochs, "rows": len(rows), "seconds": time.perf_counter() - started}


def data_randomisation(
    model: MultimodalClassifier,
    train: EmbeddedRecords,
    samples: DecodedSample | Sequence[DecodedSample],
    attribute: AttributionFunction,
    target: int | str | None = None,
    *,
    method: str | None = None,
    max_correlation: float = 0.5,
    min_segments: int = 4,
    compare: str = "segments",
    epochs: int = 30,
    seed: int = 0,
    shuffled: MultimodalClassifier | None = None,
) -> RandomisationReport:
    """Data randomisation test: the trained model's attributions vs those of a model whose
    fusion and head learned SHUFFLED labels of the primary task (:func:`shuffled_label_model`;
    pass ``shuffled`` to reuse one across methods, or one trained on another task). One step,
    named ``"shuffled labels"``; the explained class is the trained model's prediction."""
    started = time.perf_counter()
    comparison = _Comparison(model, samples, attribute, target, compare, min_segments)
    fit: dict[str, Any] = {}
    if shuffled is None:
        shuffled, fit = shuffled_label_model(model, train, epochs=epochs, seed=seed)
    step = comparison.step("shuffled labels", ["fusion", "head"], shuffled)
    report = comparison.report(method, "data", [step], "final", max_correlation)
    report.metadata.update({"runtime_s": time.perf_counter() - started, "seed": seed, "fit": fit})
    return report
