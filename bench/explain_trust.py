"""The explain section's trust figures: time per explanation of every method, Integrated
Gradients' completeness on every demo strategy, and the per-modality ranking of methods.

Called by :func:`bench.explain.run`; not a section of its own.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.card import list_checkpoints
from core.checkpoints import LoadedCheckpoint, load_checkpoint
from core.data import Dataset, load_sample
from core.explain import EXPLAINERS, RANKED_METHODS, ExplainParams, explain
from core.explain.trust import AssessmentOptions, assess_methods
from core.fusion import FUSION_NAMES
from core.sample import DecodedSample
from core.timing import timed

TIMED_METHODS = RANKED_METHODS
COMPLETENESS_TOLERANCE = 0.05
"""A sample's IG is "complete" when ``|convergence delta| <= 5 %`` of ``|f(x) - f(baseline)|``."""


def method_times(
    loaded: LoadedCheckpoint, sample: DecodedSample, params: ExplainParams, repeats: int
) -> dict[str, dict[str, Any]]:
    """Median seconds per explanation of each method on one sample (attributions only, no
    quality checks), with the settings that decide its cost."""
    device = loaded.model.device
    settings = {
        "shap": {"evaluations": params.shap_evals, "algorithm": params.shap_algorithm},
        "lime": {"samples_per_modality": params.lime_samples},
        "integrated_gradients": {"steps": params.ig_steps},
        "gradient_shap": {"draws": params.gradient_shap_samples},
        "grad_cam": {},
    }
    out = {}
    for method in TIMED_METHODS:
        run = lambda method=method: explain(loaded, sample, [method], params=params, quality=False)[method]  # noqa: E731
        run()  # one-off costs (shap's JIT, Captum's imports, Grad-CAM's private copy) before timing
        cpu_started = time.process_time()
        seconds = [timed(run, device)[1] for _ in range(repeats)]
        out[method] = {
            "label": EXPLAINERS[method].label,
            "median_s": float(np.median(seconds)),
            "min_s": float(np.min(seconds)),
            # Process CPU time per run: what the explanation costs whatever else the machine does.
            "cpu_s": (time.process_time() - cpu_started) / repeats,
            "threads": torch.get_num_threads(),
            **settings[method],
        }
    return out


def ig_completeness(
    checkpoint_dir: Path, dataset: Dataset, samples: int, params: ExplainParams, device: torch.device
) -> dict[str, dict[str, Any]]:
    """Per fusion checkpoint in ``checkpoint_dir``: IG's convergence delta relative to
    ``f(x) - f(baseline)`` on the first ``samples`` test rows with every modality, at the
    fixed step count and with the steps doubled until within :data:`COMPLETENESS_TOLERANCE`."""
    rows = [r for r in dataset.split("test") if len(r.present()) == len(dataset.modalities())][:samples]
    decoded = [load_sample(r, dataset.limits) for r in rows]
    adaptive = replace(params, ig_delta_tolerance=COMPLETENESS_TOLERANCE)
    out = {}
    for info in list_checkpoints(checkpoint_dir):
        if info.error is not None or info.fusion not in FUSION_NAMES or len(info.modalities) < 2:
            continue
        loaded = load_checkpoint(info.path, device=device)
        fixed, refined = [], []
        for sample in decoded:
            for runs, p in ((fixed, params), (refined, adaptive)):
                meta = explain(loaded, sample, ["integrated_gradients"], params=p, quality=False)[
                    "integrated_gradients"
                ].metadata
                error = abs(meta["attribution_sum"] - meta["difference"] - meta["convergence_delta"])
                relative = abs(meta["convergence_delta"]) / max(abs(meta["difference"]), 1e-3)
                runs.append((relative, meta["n_steps"], meta["runtime_s"], error))
        fixed_a, refined_a = np.asarray(fixed), np.asarray(refined)
        out[info.name] = {
            "samples": len(decoded),
            "steps": params.ig_steps,
            "median_relative_delta": float(np.median(fixed_a[:, 0])),
            "max_relative_delta": float(fixed_a[:, 0].max()),
            "complete_share": float(np.mean(fixed_a[:, 0] <= COMPLETENESS_TOLERANCE)),
            "median_s": float(np.median(fixed_a[:, 2])),
            "sum_minus_difference_minus_delta_max": float(max(fixed_a[:, 3].max(), refined_a[:, 3].max())),
            "adaptive_complete_share": float(np.mean(refined_a[:, 0] <= COMPLETENESS_TOLERANCE)),
            "adaptive_mean_steps": float(refined_a[:, 1].mean()),
            "adaptive_max_steps": int(refined_a[:, 1].max()),
            "adaptive_median_s": float(np.median(refined_a[:, 2])),
            "adaptive_mean_s": float(refined_a[:, 2].mean()),
        }
    return out


def method_ranking(loaded: LoadedCheckpoint, dataset: Dataset, options: AssessmentOptions) -> dict[str, Any]:
    """The per-checkpoint assessment (:func:`core.explain.trust.assess_methods`), recomputed."""
    report = assess_methods(loaded, dataset, options, use_cache=False)
    return report.to_json()


def run(loaded: LoadedCheckpoint, dataset: Dataset, checkpoint_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Every trust figure of the explain section (``quick``: a handful of samples). The ranking
    is of ``ranking_checkpoint`` (default ``gated``, the demo's most accurate strategy, when
    the folder has it; else the section's checkpoint)."""
    quick = bool(options.get("quick"))
    ranked_dir = checkpoint_dir / options.get("ranking_checkpoint", "gated")
    ranked = load_checkpoint(ranked_dir, device=loaded.model.device) if ranked_dir.is_dir() else loaded
    params = ExplainParams(
        lime_samples=int(options.get("lime_samples", 1000)), shap_evals=int(options.get("shap_evals", 500))
    )
    records = [r for r in dataset.split("test") if len(r.present()) == len(dataset.modalities())]
    sample = load_sample(records[0], dataset.limits)
    ranking_samples = int(options.get("ranking_samples", 4 if quick else 100))
    assessment = AssessmentOptions(
        samples=ranking_samples,
        sanity_samples=int(options.get("sanity_samples", 2 if quick else 12)),
        params=params,
        n_perturb=2 if quick else 4,
        seeds=2 if quick else 3,
    )
    return {
        "methods": method_times(loaded, sample, params, repeats=2 if quick else 5),
        "ig_completeness": ig_completeness(
            checkpoint_dir, dataset, 3 if quick else 100, params, loaded.model.device
        ),
        "ranking": method_ranking(ranked, dataset, assessment),
    }
