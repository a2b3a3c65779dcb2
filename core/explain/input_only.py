"""A DELIBERATELY BROKEN attribution method: the negative control of the sanity checks.

It never looks at the model: image = pixel brightness, audio = log-mel level above the
quietest cell, text = word length. Same result shape as every other method, so the
checks run on it unchanged; it must fail the randomisation tests (its maps do not change
when the model is destroyed). Not in the registry: nobody should pick it to explain.
"""

from __future__ import annotations

import numpy as np

from core.explain.base import Explainer
from core.explain.engine import PerturbationEngine
from core.explain.gradient_placement import segment_sums
from core.explain.result import Explanation
from core.explain.segmentation import AudioSegmentation, ImageSegmentation


def input_only_explanation(engine: PerturbationEngine, target: int, modalities: list[str]) -> Explanation:
    """Brightness, loudness and word length of ``engine``'s sample, whatever the model."""
    maps: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    for m in modalities:
        segmentation = engine.segmentation(m)
        if isinstance(segmentation, ImageSegmentation):
            maps[m] = segmentation.image.astype(np.float64).mean(axis=2) / 255.0
            scores[m] = segment_sums(segmentation.labels, maps[m], segmentation.n_segments)
        elif isinstance(segmentation, AudioSegmentation):
            maps[m] = segmentation.spectrogram.astype(np.float64) - float(segmentation.spectrogram.min())
            scores[m] = segment_sums(segmentation.labels, maps[m], segmentation.n_segments)
        else:
            scores[m] = np.array([float(len(token)) for token in segmentation.tokens])
    result = engine.attribution("input_only", target, scores)
    result.image = maps.get("image", result.image)
    result.audio = maps.get("audio", result.audio)
    result.metadata.update({"warning": "deliberately broken: ignores the model", "evaluations": 0, "runtime_s": 0.0})
    return result


class InputOnlyExplainer(Explainer):
    """The deliberately broken control (never registered)."""

    name = "input_only"
    label = "Input only (broken control)"

    def explain(self, engine: PerturbationEngine, target: int, modalities: list[str]) -> Explanation:
        return input_only_explanation(engine, target, modalities)
