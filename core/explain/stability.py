"""Stability of attributions: under small input noise, and across random seeds.

- :func:`max_sensitivity` (Yeh et al., 2019): the largest relative change of an attribution
  when the DECODED sample gets small noise (pixels, waveform; text is discrete and stays as
  it is). A loop of its own, so it applies to every method, SHAP and LIME included; maps
  are compared on fixed grids (image pixels, audio grid, tokens).
- :func:`gradient_sensitivity_max`: Captum's ``captum.metrics.sensitivity_max`` on the
  tensors IG and GradientSHAP attribute (noise in the encoders' input space, token
  embeddings included), for those two methods only.
- :func:`seed_variation`: how much a sampling method's result depends on its seed (LIME is
  known to flip signs at low sample counts): rank correlation between seeds and the share
  of segments whose sign is not the same for every seed.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from core.errors import ExplanationError
from core.explain.engine import PerturbationEngine
from core.explain.params import ExplainParams
from core.explain.quality import rank_correlation
from core.explain.randomisation import AttributionFunction, attribution_function
from core.explain.run import explained_modalities, resolve_target
from core.model import MultimodalClassifier
from core.sample import DecodedSample


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
    ``||A(x') - A(x)|| / ||A(x)||`` of the maps (:meth:`Explanation.maps`, Frobenius norms),
    per modality and over all modalities together; the maximum over the copies is reported.
    The target class stays fixed.

    Returns:
        ``{"max_sensitivity": float, "per_modality": {m: float}, "n_perturb", "image_noise",
        "audio_noise", "runtime_s"}``.
    """
    started = time.perf_counter()
    first = attribute(model, sample, target)
    target, reference = first.target, first.maps()
    rng = np.random.default_rng(seed)
    worst = {m: 0.0 for m in reference}
    worst_joint = 0.0
    joint_norm = math.sqrt(sum(float(np.sum(np.square(a))) for a in reference.values())) or 1.0
    for _ in range(n_perturb):
        noisy = perturb_sample(sample, rng, image_noise=image_noise, audio_noise=audio_noise)
        maps = attribute(model, noisy, target).maps()
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


def seed_variation(
    model: MultimodalClassifier,
    sample: DecodedSample,
    method: str,
    params: ExplainParams | None = None,
    target: int | str | None = None,
    *,
    seeds: int = 3,
    task: str | None = None,
) -> dict[str, Any]:
    """How a method's segment scores vary with ``ExplainParams.seed`` (seeds 0 .. ``seeds`` - 1).

    Returns:
        ``{"rank_correlation": {m: mean Spearman over pairs of seeds}, "sign_flips": {m: share
        of segments whose sign is not the same for every seed}, "seeds", "runtime_s"}``.
        A deterministic method gives correlations of 1 and no flips.
    """
    if seeds < 2:
        raise ExplanationError("Seed variation needs at least two seeds.")
    started = time.perf_counter()
    params = params or ExplainParams()
    runs = [attribution_function(method, replace(params, seed=0), task)(model, sample, target)]
    runs += [attribution_function(method, replace(params, seed=s), task)(model, sample, runs[0].target) for s in range(1, seeds)]
    correlations, flips = {}, {}
    for m in runs[0].segment_scores:
        scores = np.stack([r.segment_scores[m] for r in runs])
        pairs = [rank_correlation(a, b) for a, b in itertools.combinations(scores, 2)]
        finite = [p for p in pairs if np.isfinite(p)]
        correlations[m] = float(np.mean(finite)) if finite else float("nan")
        signs = np.sign(scores)
        flips[m] = float(np.mean(~(signs == signs[0]).all(axis=0)))
    return {
        "rank_correlation": correlations,
        "sign_flips": flips,
        "seeds": seeds,
        "runtime_s": time.perf_counter() - started,
    }


def gradient_sensitivity_max(
    model: MultimodalClassifier,
    sample: DecodedSample,
    method: str = "integrated_gradients",
    target: int | str | None = None,
    params: ExplainParams | None = None,
    *,
    radius: float = 0.02,
    n_perturb: int = 8,
    seed: int = 0,
    task: str | None = None,
) -> dict[str, Any]:
    """``captum.metrics.sensitivity_max`` of IG or GradientSHAP on the attributed tensors of ``task``'s output.

    Noise: uniform in ``[-r, r]`` per value, ``r = radius x std(input - baseline)`` of each
    modality (the inputs live on different scales: pixels, normalised log-mel, token
    embeddings). Captum normalises by the norm of the unperturbed attribution over all
    modalities together; ``per_modality`` repeats the metric with the same perturbations
    (same seed) on each modality's attribution alone.
    """
    from captum.attr import GradientShap, IntegratedGradients
    from captum.metrics import sensitivity_max

    from core.explain.gradient_problem import GradientProblem, grad_mode, seeded_rngs
    from core.explain.integrated_gradients import INTEGRATION

    if method not in ("integrated_gradients", "gradient_shap"):
        raise ExplanationError(
            f"gradient_sensitivity_max supports integrated_gradients and gradient_shap, not {method!r}"
        )
    started = time.perf_counter()
    params = params or ExplainParams()
    engine = PerturbationEngine(model, sample, params, task=task)
    problem = GradientProblem(engine, explained_modalities(engine))
    target = resolve_target(engine.task.classes, target, engine.probabilities)
    radii = problem.noise_scales(radius)
    stdevs = problem.noise_scales(params.gradient_shap_noise)
    batch = problem.internal_batch(params.ig_steps)

    def perturb(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(x + (torch.rand_like(x) * 2.0 - 1.0) * r for x, r in zip(inputs, radii, strict=True))

    def explanation(inputs: tuple[torch.Tensor, ...], only: int | None = None) -> tuple[torch.Tensor, ...]:
        rows = inputs[0].shape[0]
        with grad_mode():
            if method == "integrated_gradients":
                out = IntegratedGradients(problem.forward).attribute(
                    inputs,
                    baselines=tuple(b.expand(rows, *b.shape[1:]) for b in problem.baselines),
                    target=target,
                    n_steps=params.ig_steps,
                    method=INTEGRATION,
                    internal_batch_size=batch * rows,
                )
            else:
                out = GradientShap(problem.forward).attribute(
                    inputs,
                    baselines=problem.baselines,
                    target=target,
                    n_samples=params.gradient_shap_samples,
                    stdevs=stdevs,
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

    return {
        "max_sensitivity": measure(None),
        "per_modality": {m: measure(i) for i, m in enumerate(problem.modalities)},
        "radius": radius,
        "radii": dict(zip(problem.modalities, radii, strict=True)),
        "n_perturb": n_perturb,
        "method": method,
        "not_differentiable": dict(problem.not_differentiable),
        "runtime_s": time.perf_counter() - started,
    }
