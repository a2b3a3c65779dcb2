"""Sanity checks of attribution methods: model-parameter randomisation and max-sensitivity.

Model-parameter randomisation (Adebayo et al., 2018, "Sanity Checks for Saliency Maps"):
an attribution that explains the MODEL must change when the model's learned parameters
are destroyed. :func:`cascading_randomisation` re-initialises a deep copy of the model
from the top (head, then fusion, then every encoder's layers from the last to the first,
cumulatively), recomputes the attribution after each step and reports the Spearman rank
correlation with the trained model's attribution, per modality (averaged over the
samples given). A method whose maps barely change (the correlation stays high through
the cascade: by default its mean over the steps is judged, or the last step alone) FAILS:
it reflects the input, not what the model learned. :func:`input_only_explanation` is such a method,
on purpose, as a control.

Any method fits: an attribution function is ``callable(model, sample, target) ->
Explanation``; :func:`attribution_function` builds one for SHAP, LIME, modality Shapley
and the gradient methods.

Max-sensitivity (Yeh et al., 2019): the largest relative change of an attribution under
small input noise. :func:`max_sensitivity` perturbs the DECODED sample (pixel noise,
waveform noise; text is discrete and stays as is), so it applies to every method, SHAP and
LIME included, and compares maps on fixed grids (image pixels, audio grid, tokens).
:func:`gradient_sensitivity_max` is Captum's ``captum.metrics.sensitivity_max`` on the
tensors the gradient methods attribute (noise in the encoders' input space, token
embeddings included); it only applies to tensor-input methods, which is why the generic
check is a loop of its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from core.explain.params import ExplainParams
from core.explain.result import Explanation
from core.explain.segmentation import SEGMENTATIONS
from core.model import MultimodalClassifier
from core.sample import DecodedSample

AttributionFunction = Callable[[MultimodalClassifier, DecodedSample, int], Explanation]


# ---------------------------------------------------------------------- attribution functions
def attribution_function(method: str, params: ExplainParams | None = None, gradient_params=None) -> AttributionFunction:
    """``callable(model, sample, target) -> Explanation`` for a method name.

    ``"shap"``, ``"lime"``, ``"modality"`` run on a :class:`~core.explain.engine.PerturbationEngine`
    without the faithfulness curves (the checks here only need the attributions);
    ``"integrated_gradients"``, ``"gradient_shap"``, ``"grad_cam"`` are the gradient methods;
    ``"input_only"`` is the deliberately broken control.
    """
    params = params or ExplainParams()
    if method in ("shap", "lime", "modality"):
        from core.explain.engine import PerturbationEngine
        from core.explain.lime_explainer import lime_explanation
        from core.explain.modality_shapley import modality_shapley
        from core.explain.shap_explainer import shap_explanation

        def perturbation(model: MultimodalClassifier, sample: DecodedSample, target: int) -> Explanation:
            engine = PerturbationEngine(model, sample, params)
            if method == "modality":
                return modality_shapley(engine, target)
            modalities = [m for m in engine.modalities if params.modalities is None or m in params.modalities]
            return (shap_explanation if method == "shap" else lime_explanation)(engine, target, modalities)

        return perturbation
    if method == "input_only":
        return lambda model, sample, target: input_only_explanation(model, sample, target, params)
    from core.explain.gradients import GRADIENT_METHODS, gradient_explain

    if method in GRADIENT_METHODS:
        return lambda model, sample, target: gradient_explain(model, sample, method, target, params, gradient_params)
    raise ValueError(f"Unknown method {method!r}.")


def input_only_explanation(
    model: MultimodalClassifier, sample: DecodedSample, target: int, params: ExplainParams | None = None
) -> Explanation:
    """A DELIBERATELY BROKEN attribution, the negative control of the sanity checks: it
    never looks at the model. Image: pixel brightness; audio: the log-mel (dB above the
    floor); text: word length. Same shape as every other result; it must fail
    :func:`cascading_randomisation`."""
    from core.explain.segmentation import AudioSegmentation, ImageSegmentation

    params = params or ExplainParams()
    result = Explanation(
        method="input_only",
        target=int(target),
        target_name=model.classes[int(target)],
        classes=list(model.classes),
        probabilities=np.full(len(model.classes), np.nan),
        modality_totals={},
        metadata={"method": "input_only", "warning": "deliberately broken: ignores the model"},
    )
    for m in model.modalities:
        value = sample.get(m)
        if value is None:
            continue
        segmentation = SEGMENTATIONS.get(m, value, model.encoders[m], params)
        if isinstance(segmentation, ImageSegmentation):
            result.image = segmentation.image.astype(np.float64).mean(axis=2) / 255.0
            scores = np.bincount(segmentation.labels.ravel(), result.image.ravel(), minlength=segmentation.n_segments)
        elif isinstance(segmentation, AudioSegmentation):
            result.audio = segmentation.spectrogram.astype(np.float64) - float(segmentation.spectrogram.min())
            result.audio_times, result.audio_freqs = segmentation.times, segmentation.freqs
            result.audio_spectrogram = segmentation.spectrogram.astype(np.float64)
            scores = np.bincount(segmentation.labels.ravel(), result.audio.ravel(), minlength=segmentation.n_segments)
        else:
            scores = np.array([float(len(t)) for t in segmentation.tokens])
            result.tokens = segmentation.to_map(scores)
        result.segment_scores[m] = scores
        result.modality_totals[m] = float(scores.sum())
    return result


# ---------------------------------------------------------------------- randomisation
def randomise_module_(module: nn.Module, generator: torch.Generator) -> list[str]:
    """Re-initialise the parameters owned directly by ``module`` (not its children), in place.

    Matrices and kernels (2-D and up) get PyTorch's default ``nn.Linear``/``nn.Conv``
    initialisation (Kaiming-uniform, ``a = sqrt(5)``); vectors (biases, norm scales,
    missing-modality and [CLS] embeddings) are randomly permuted, which keeps their
    scale but destroys what was learned per unit. Drawn from ``generator`` (CPU), so the
    global RNG is untouched. Returns the names of the parameters changed.
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

    Head (when it has parameters), fusion, then encoder layers from the last to the
    first: step k re-initialises the k-th group of layers from the top of EVERY encoder
    (each encoder's parameter-owning modules are split into at most ``max_encoder_steps``
    groups, so large pretrained encoders take the same number of steps as small ones).
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


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if len(a) != len(b) or len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _maps(result: Explanation, on: str) -> dict[str, np.ndarray]:
    if on == "segments":
        return dict(result.segment_scores)
    out = {}
    if result.image is not None:
        out["image"] = np.asarray(result.image)
    if result.audio is not None:
        out["audio"] = np.asarray(result.audio)
    if result.tokens is not None:
        out["text"] = np.array([s for _, s in result.tokens])
    return out


@dataclass
class RandomisationStep:
    """One cumulative step of the cascade: what was re-initialised, and the Spearman rank
    correlation per modality with the trained model's attribution, averaged over the
    samples (``abs_correlations``: of the absolute values; ``per_sample``: each sample's)."""

    name: str
    modules: list[str]
    correlations: dict[str, float]
    abs_correlations: dict[str, float]
    per_sample: list[dict[str, float]]
    runtime_s: float


@dataclass
class RandomisationReport:
    """Result of :func:`cascading_randomisation`.

    Attributes:
        targets: the class explained for each sample (the same at every step).
        criterion: ``"mean"`` (the rank correlation averaged over the cascade's steps) or
            ``"final"`` (at the last step, everything random).
        passed: per modality, ``True`` when the criterion's correlation is below
            ``max_correlation``, ``False`` when the attributions stay at least that similar
            to the trained model's (the method fails), ``None`` when not judged (fewer than
            ``min_segments`` units in every sample, or constant scores).
        passes: every judged modality passed (and at least one was judged).
        references: the trained model's explanations, one per sample.
    """

    method: str
    targets: list[int]
    compared_on: str
    criterion: str
    max_correlation: float
    steps: list[RandomisationStep]
    passed: dict[str, bool | None]
    references: list[Explanation]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def passes(self) -> bool:
        judged = [v for v in self.passed.values() if v is not None]
        return bool(judged) and all(judged)

    def final_correlations(self) -> dict[str, float]:
        """Per modality, the mean rank correlation at the last step (everything randomised)."""
        return dict(self.steps[-1].correlations) if self.steps else {}

    def mean_correlations(self) -> dict[str, float]:
        """Per modality, the rank correlation averaged over every step of the cascade."""
        modalities = self.steps[0].correlations if self.steps else {}
        return {m: _mean([step.correlations[m] for step in self.steps]) for m in modalities}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "targets": list(self.targets),
            "compared_on": self.compared_on,
            "criterion": self.criterion,
            "max_correlation": self.max_correlation,
            "final_correlations": self.final_correlations(),
            "mean_correlations": self.mean_correlations(),
            "passes": self.passes,
            "passed": dict(self.passed),
            "steps": [
                {
                    "name": s.name,
                    "modules": list(s.modules),
                    "correlations": dict(s.correlations),
                    "abs_correlations": dict(s.abs_correlations),
                    "per_sample": [dict(c) for c in s.per_sample],
                    "runtime_s": s.runtime_s,
                }
                for s in self.steps
            ],
            "metadata": dict(self.metadata),
        }


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


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
            has few tokens, and the rank correlation of 5 numbers is mostly noise).
        attribute: ``callable(model, sample, target) -> Explanation``.
        target: the class explained for every sample at every step (``None``: each
            sample's class predicted by the trained model).
        method: label for the report (default: the first reference explanation's ``method``).
        max_correlation: a modality passes when its (signed) Spearman correlation with the
            trained model's attributions, averaged over the samples, is below this ...
        criterion: ... averaged over the cascade's steps (``"mean"``, the default: with a
            handful of tokens per text, one step's correlation is noisy, and "the maps stay
            similar while the model is destroyed" is a statement about the whole cascade), or
            at its last step only (``"final"``).
        min_segments: samples whose modality has fewer units do not count for it.
        max_encoder_steps: groups per encoder (see :func:`randomisation_steps`).
        compare: ``"segments"`` (segment scores: equal footing for every method) or
            ``"maps"`` (image pixels, audio grid, tokens).
        seed: seeds the re-initialisation.
    """
    from core.explain import resolve_target

    started = time.perf_counter()
    if compare not in ("segments", "maps"):
        raise ValueError("compare must be 'segments' or 'maps'")
    if criterion not in ("mean", "final"):
        raise ValueError("criterion must be 'mean' or 'final'")
    samples = [samples] if isinstance(samples, DecodedSample) else list(samples)
    if not samples:
        raise ValueError("No samples to explain.")
    probabilities = model.predict_proba(samples)
    targets = [resolve_target(model, target, p) for p in probabilities]
    references = [attribute(model, s, t) for s, t in zip(samples, targets, strict=True)]
    reference_maps = [_maps(r, compare) for r in references]
    modalities = sorted({m for maps in reference_maps for m in maps})
    counted = [
        {m for m, a in maps.items() if np.asarray(a).size >= min_segments and np.ptp(np.asarray(a)) > 0}
        for maps in reference_maps
    ]
    randomised = deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    steps = []
    for name, modules in randomisation_steps(randomised, max_encoder_steps):
        for module_name in modules:
            randomise_module_(randomised.get_submodule(module_name), generator)
        step_started = time.perf_counter()
        per_sample, per_sample_abs = [], []
        for sample, t, ref in zip(samples, targets, reference_maps, strict=True):
            maps = _maps(attribute(randomised, sample, t), compare)
            per_sample.append({m: _spearman(ref[m], maps.get(m, np.zeros(0))) for m in ref})
            per_sample_abs.append({m: _spearman(np.abs(ref[m]), np.abs(maps.get(m, np.zeros(0)))) for m in ref})
        steps.append(
            RandomisationStep(
                name=name,
                modules=modules,
                correlations={
                    m: _mean([c[m] for c, use in zip(per_sample, counted, strict=True) if m in use]) for m in modalities
                },
                abs_correlations={
                    m: _mean([c[m] for c, use in zip(per_sample_abs, counted, strict=True) if m in use])
                    for m in modalities
                },
                per_sample=per_sample,
                runtime_s=time.perf_counter() - step_started,
            )
        )
    passed: dict[str, bool | None] = {}
    for m in modalities:
        series = [step.correlations[m] for step in steps]
        value = (_mean(series) if criterion == "mean" else series[-1]) if series else float("nan")
        passed[m] = bool(value < max_correlation) if np.isfinite(value) else None
    return RandomisationReport(
        method=method or references[0].method,
        targets=targets,
        compared_on=compare,
        criterion=criterion,
        max_correlation=max_correlation,
        steps=steps,
        passed=passed,
        references=references,
        metadata={
            "runtime_s": time.perf_counter() - started,
            "seed": seed,
            "min_segments": min_segments,
            "samples": len(samples),
        },
    )


# ---------------------------------------------------------------------- sensitivity
def perturb_sample(
    sample: DecodedSample, rng: np.random.Generator, *, image_noise: float = 2.0, audio_noise: float = 0.01
) -> DecodedSample:
    """A slightly noised copy: Gaussian pixel noise of std ``image_noise`` (uint8 units,
    rounded and clipped), waveform noise of std ``audio_noise`` x the clip's RMS; text unchanged."""
    out = replace(sample, meta=dict(sample.meta))
    if sample.image is not None:
        noisy = sample.image.astype(np.float64) + rng.normal(0.0, image_noise, sample.image.shape)
        out.image = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    if sample.audio is not None:
        wav = np.asarray(sample.audio, dtype=np.float32)
        rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) or 1e-4
        out.audio = (wav + rng.normal(0.0, audio_noise * rms, wav.shape)).astype(np.float32)
    return out


def max_sensitivity(
    model: MultimodalClassifier,
    sample: DecodedSample,
    attribute: AttributionFunction,
    target: int | str | None = None,
    *,
    n_perturb: int = 8,
    image_noise: float = 2.0,
    audio_noise: float = 0.01,
    seed: int = 0,
) -> dict[str, Any]:
    """Max-sensitivity of any attribution method under small noise on the decoded sample.

    For each of ``n_perturb`` noised copies (:func:`perturb_sample`), the relative change
    ``||A(x') - A(x)|| / ||A(x)||`` of the maps (image ``[H, W]``, audio grid, token scores;
    Frobenius norms), per modality and over all modalities together; the maximum over the
    copies is reported. The target class stays fixed.

    Returns:
        ``{"max_sensitivity": float, "per_modality": {m: float}, "n_perturb", "image_noise",
        "audio_noise", "runtime_s"}``.
    """
    from core.explain import resolve_target

    started = time.perf_counter()
    target = resolve_target(model, target, model.predict_proba([sample])[0])
    reference = _maps(attribute(model, sample, target), "maps")
    rng = np.random.default_rng(seed)
    worst = {m: 0.0 for m in reference}
    worst_joint = 0.0
    joint_norm = math.sqrt(sum(float(np.sum(np.square(a))) for a in reference.values())) or 1.0
    for _ in range(n_perturb):
        maps = _maps(
            attribute(model, perturb_sample(sample, rng, image_noise=image_noise, audio_noise=audio_noise), target),
            "maps",
        )
        squared = 0.0
        for m, a in reference.items():
            difference = float(np.sum(np.square(maps[m] - a)))
            squared += difference
            worst[m] = max(worst[m], math.sqrt(difference) / (float(np.linalg.norm(a)) or 1.0))
        worst_joint = max(worst_joint, math.sqrt(squared) / joint_norm)
    return {
        "max_sensitivity": worst_joint,
        "per_modality": worst,
        "n_perturb": n_perturb,
        "image_noise": image_noise,
        "audio_noise": audio_noise,
        "runtime_s": time.perf_counter() - started,
    }


def gradient_sensitivity_max(
    model: MultimodalClassifier,
    sample: DecodedSample,
    method: str = "integrated_gradients",
    target: int | str | None = None,
    params: ExplainParams | None = None,
    gradient_params=None,
    *,
    radius: float = 0.02,
    n_perturb: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """``captum.metrics.sensitivity_max`` of IG or GradientSHAP on the attributed tensors.

    Noise: uniform in ``[-r, r]`` per value, ``r = radius x std(input - baseline)`` of each
    modality (the inputs live on different scales: pixels, normalised log-mel, token
    embeddings). Captum normalises by the norm of the unperturbed attribution over all
    modalities together; ``per_modality`` repeats the metric with the same perturbations
    (same seed) on each modality's attribution alone.
    """
    from captum.attr import GradientShap, IntegratedGradients
    from captum.metrics import sensitivity_max

    from core.explain import resolve_target
    from core.explain.gradients import GradientParams, GradientProblem, _grad_mode, auto_internal_batch, seeded_rngs

    started = time.perf_counter()
    gp = gradient_params or GradientParams()
    problem = GradientProblem(model, sample, params)
    if not problem.items:
        raise ValueError(f"Nothing differentiable to perturb: {problem.not_differentiable}")
    target = resolve_target(model, target, problem.probabilities)
    radii = tuple(float(radius * (x - b).float().std()) for x, b in zip(problem.inputs, problem.baselines, strict=True))
    stdevs = tuple(
        float(gp.shap_noise * (i.inputs - i.baseline).float().std()) if i.noise else 0.0 for i in problem.items
    )

    def perturb(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(x + (torch.rand_like(x) * 2.0 - 1.0) * r for x, r in zip(inputs, radii, strict=True))

    batch = gp.internal_batch_size or auto_internal_batch(problem, gp.n_steps)

    def explanation(inputs: tuple[torch.Tensor, ...], only: int | None = None) -> tuple[torch.Tensor, ...]:
        rows = inputs[0].shape[0]
        baselines = tuple(b.expand(rows, *b.shape[1:]) for b in problem.baselines)
        with _grad_mode():
            if method == "integrated_gradients":
                out = IntegratedGradients(problem.forward).attribute(
                    inputs,
                    baselines=baselines,
                    target=target,
                    n_steps=gp.n_steps,
                    method=gp.integration,
                    internal_batch_size=batch * rows,
                )
            elif method == "gradient_shap":
                out = GradientShap(problem.forward).attribute(
                    inputs, baselines=problem.baselines, target=target, n_samples=gp.shap_samples, stdevs=stdevs
                )
            else:
                raise ValueError(
                    f"gradient_sensitivity_max supports integrated_gradients and gradient_shap, not {method!r}"
                )
        out = tuple(a.detach() for a in out)
        return out if only is None else (out[only],)

    def measure(only: int | None) -> float:
        with seeded_rngs(seed, problem.device):
            value = sensitivity_max(
                lambda inputs: explanation(inputs, only),
                problem.inputs,
                perturb_func=perturb,
                n_perturb_samples=n_perturb,
            )
        return float(value.reshape(-1)[0])

    joint = measure(None)
    per_modality = {m: measure(i) for i, m in enumerate(problem.modalities)}
    return {
        "max_sensitivity": joint,
        "per_modality": per_modality,
        "radius": radius,
        "radii": dict(zip(problem.modalities, radii, strict=True)),
        "n_perturb": n_perturb,
        "method": method,
        "not_differentiable": dict(problem.not_differentiable),
        "runtime_s": time.perf_counter() - started,
    }
