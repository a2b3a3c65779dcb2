"""GradientSHAP (``captum.attr.GradientShap``) over every differentiable modality at once.

Expected gradients at random points between the removed baseline and the (slightly
noised) input, times ``input - baseline`` (Lundberg and Lee, 2017). Completeness holds
only in expectation over the draws.
"""

from __future__ import annotations

import time

from captum.attr import GradientShap

from core.explain.base import Explainer
from core.explain.engine import PerturbationEngine
from core.explain.gradient_problem import GradientProblem, grad_mode, seeded_rngs
from core.explain.params import ExplainParams
from core.explain.result import Explanation


def gradient_shap(engine: PerturbationEngine, target: int, modalities: list[str]) -> Explanation:
    """GradientSHAP of ``engine``'s sample for class ``target`` over ``modalities``.

    Same result shape as :func:`~core.explain.integrated_gradients.integrated_gradients`;
    ``metadata["convergence_delta"]`` is the mean of Captum's per-draw deltas
    (``convergence_delta_max_abs`` the largest). Draws are seeded by ``ExplainParams.seed``
    (numpy's and torch's global RNGs, under a lock, restored afterwards).

    Raises:
        MethodNotApplicableError: no requested modality is differentiable.
    """
    started = time.perf_counter()
    params = engine.params
    problem = GradientProblem(engine, modalities)
    stdevs = problem.noise_scales(params.gradient_shap_noise)
    engine.check_cancel()
    with grad_mode(), seeded_rngs(params.seed, problem.device):
        attributions, delta = GradientShap(problem.forward).attribute(
            problem.inputs,
            baselines=problem.baselines,
            n_samples=params.gradient_shap_samples,
            stdevs=stdevs,
            target=target,
            return_convergence_delta=True,
        )
    full, base = problem.value(problem.inputs, target), problem.value(problem.baselines, target)
    result = problem.explanation("gradient_shap", target, attributions)
    result.metadata.update(
        {
            "explainer": "captum.attr.GradientShap",
            "convergence_delta": float(delta.mean()),
            "convergence_delta_max_abs": float(delta.abs().max()),
            "full_value": full,
            "baseline_value": base,
            "difference": full - base,
            "attribution_sum": float(sum(result.modality_totals.values())),
            "n_samples": params.gradient_shap_samples,
            "stdevs": dict(zip(problem.modalities, stdevs, strict=True)),
            "evaluations": params.gradient_shap_samples + 2,
            "runtime_s": time.perf_counter() - started,
        }
    )
    return result


class GradientShapExplainer(Explainer):
    """GradientSHAP through Captum, every differentiable modality in one call."""

    name = "gradient_shap"
    label = "GradientSHAP"
    seeded = True

    def cost(self, params: ExplainParams, n_modalities: int) -> float:
        return 3.0 * params.gradient_shap_samples

    def explain(self, engine: PerturbationEngine, target: int, modalities: list[str]) -> Explanation:
        return gradient_shap(engine, target, modalities)
