"""Joint SHAP values over image superpixels, text tokens and audio segments.

All segments of all explained modalities form ONE 0/1 feature vector
``[image segments | text tokens | audio segments]``; the model is wrapped as
``f(mask_matrix [N, D]) -> target probability [N]`` and explained with shap's
``PermutationExplainer`` (exact efficiency per permutation: the values sum to
``f(all kept) - f(all removed)``). shap's multi-input torch explainers are not used.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import shap

from core.explain.engine import PerturbationEngine
from core.explain.result import Explanation
from core.explain.segmentation import AudioSegmentation, ImageSegmentation, Segmentation, TextSegmentation

# shap's permutation explainer draws from numpy's global RNG; holding this lock while it
# runs keeps seeded results identical when several threads explain at once.
_GLOBAL_RNG_LOCK = threading.Lock()


def _zero_masker(mask: np.ndarray, row: np.ndarray) -> np.ndarray:
    """shap masker: removed features become 0 (a plain function; shap's tabular maskers
    spend ~10 s compiling numba code on first use)."""
    return (row * mask).reshape(1, -1)


def feature_layout(engine: PerturbationEngine, modalities: list[str]) -> dict[str, slice]:
    """Columns of each modality's segments in the joint feature vector, in ``modalities`` order."""
    layout = {}
    start = 0
    for modality in modalities:
        count = engine.segmentation(modality).n_segments
        layout[modality] = slice(start, start + count)
        start += count
    return layout


def split_masks(masks: np.ndarray, layout: dict[str, slice]) -> dict[str, np.ndarray]:
    """``[N, D]`` joint masks -> per-modality ``[N, n_m]`` masks."""
    return {m: masks[:, columns] > 0.5 for m, columns in layout.items()}


def shap_explanation(engine: PerturbationEngine, target: int, modalities: list[str]) -> Explanation:
    """SHAP values of ``engine``'s sample for class ``target`` over the segments of ``modalities``."""
    started = time.perf_counter()
    evaluations_before = engine.evaluations
    params = engine.params
    layout = feature_layout(engine, modalities)
    n_features = sum(s.stop - s.start for s in layout.values())
    per_permutation = 2 * n_features + 1
    max_evals = max(params.shap_evals, per_permutation)
    engine.expect((max_evals // per_permutation) * per_permutation + 1)

    def target_probability(masks: np.ndarray) -> np.ndarray:
        return engine.evaluate_masks(split_masks(np.atleast_2d(masks), layout))[:, target]

    with _GLOBAL_RNG_LOCK:
        explainer = shap.PermutationExplainer(target_probability, _zero_masker, seed=params.seed)
        result = explainer(np.ones((1, n_features)), max_evals=max_evals, batch_size=max_evals, silent=True)
    values = np.asarray(result.values[0], dtype=np.float64)
    base_value = float(np.asarray(result.base_values).reshape(-1)[0])
    explanation = attribution_explanation(engine, "shap", target, {m: values[columns] for m, columns in layout.items()})
    explanation.metadata.update(
        {
            "explainer": "shap.PermutationExplainer",
            "max_evals": max_evals,
            "base_value": base_value,
            "full_value": float(engine.probabilities[target]),
            "evaluations": engine.evaluations - evaluations_before,
            "runtime_s": time.perf_counter() - started,
        }
    )
    return explanation


def attribution_explanation(
    engine: PerturbationEngine, method: str, target: int, segment_scores: dict[str, np.ndarray]
) -> Explanation:
    """An :class:`Explanation` with per-modality maps spread from per-segment scores."""
    explanation = Explanation(
        method=method,
        target=target,
        target_name=engine.model.classes[target],
        classes=list(engine.model.classes),
        probabilities=engine.probabilities,
        modality_totals={m: float(np.sum(s)) for m, s in segment_scores.items()},
        segment_scores={m: np.asarray(s, dtype=np.float64) for m, s in segment_scores.items()},
        metadata={
            "method": method,
            "target": target,
            "parameters": engine.params.to_dict(),
            "device": engine.metadata()["device"],
            "segments": {m: int(len(s)) for m, s in segment_scores.items()},
        },
    )
    for modality, scores in segment_scores.items():
        segmentation: Segmentation = engine.segmentation(modality)
        if isinstance(segmentation, ImageSegmentation):
            explanation.image = segmentation.to_map(scores)
        elif isinstance(segmentation, TextSegmentation):
            explanation.tokens = segmentation.to_map(scores)
        elif isinstance(segmentation, AudioSegmentation):
            explanation.audio = segmentation.to_map(scores)
            explanation.audio_times = segmentation.times
            explanation.audio_freqs = segmentation.freqs
            explanation.audio_spectrogram = segmentation.spectrogram.astype(np.float64)
            explanation.metadata["audio_domain"] = segmentation.domain
    return explanation
