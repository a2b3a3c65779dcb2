"""LIME for each modality: superpixels (lime_image), words (lime_text), audio segments (LimeBase).

Each modality is explained with the others held at their unperturbed embeddings. The
classifier functions handed to lime evaluate whole perturbation batches through the
engine, which re-encodes only the perturbed modality.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from lime.lime_base import LimeBase
from lime.lime_image import LimeImageExplainer
from lime.lime_text import LimeTextExplainer
from sklearn.metrics import pairwise_distances

from core.explain.base import Explainer
from core.explain.engine import PerturbationEngine
from core.explain.params import ExplainParams
from core.explain.result import Explanation
from core.explain.segmentation import AudioSegmentation, ImageSegmentation, TextSegmentation

KERNEL_WIDTH = 0.25
"""LIME's image kernel width on cosine distance, used for audio segments too."""


def _weights(local_explanation: list[tuple[int, float]], n_segments: int) -> np.ndarray:
    scores = np.zeros(n_segments)
    for feature, weight in local_explanation:
        scores[int(feature)] = weight
    return scores


class EngineLimeImageExplainer(LimeImageExplainer):
    """``LimeImageExplainer`` whose neighbourhood goes through the perturbation engine.

    lime's own ``data_labels`` rebuilds every perturbed image pixel by pixel in a Python
    loop and hands the images to ``classifier_fn`` in small batches. This override draws
    the same 0/1 rows from lime's RNG and evaluates them as segment masks (composed
    lazily, deduplicated, batched); removed superpixels show ``params.image_baseline``,
    the same baseline SHAP and the faithfulness checks use. Sampling weights, the kernel
    and the ridge fit stay lime's.
    """

    def __init__(self, engine: PerturbationEngine, **kwargs: Any):
        super().__init__(**kwargs)
        self.engine = engine

    def data_labels(self, image, fudged_image, segments, classifier_fn, num_samples, batch_size=10, **kwargs):  # type: ignore[override]
        n_features = np.unique(segments).shape[0]
        data = self.random_state.randint(0, 2, num_samples * n_features).reshape((num_samples, n_features))
        data[0, :] = 1
        return data, self.engine.evaluate_masks({"image": data})


def lime_image_scores(engine: PerturbationEngine, target: int) -> np.ndarray:
    """``[n_segments]`` LIME weights of the image superpixels."""
    segmentation = engine.segmentation("image")
    assert isinstance(segmentation, ImageSegmentation)
    params = engine.params
    explainer = EngineLimeImageExplainer(
        engine, kernel_width=KERNEL_WIDTH, feature_selection="none", random_state=params.seed
    )
    result = explainer.explain_instance(
        segmentation.image,
        classifier_fn=None,
        labels=(target,),
        top_labels=None,
        num_features=segmentation.n_segments,
        num_samples=params.lime_samples,
        batch_size=params.batch_size,
        segmentation_fn=lambda image: segmentation.labels,
    )
    return _weights(result.local_exp[target], segmentation.n_segments)


def lime_text_scores(engine: PerturbationEngine, target: int) -> np.ndarray:
    """``[n_tokens]`` LIME weights of the encoder's tokens (removed tokens are dropped)."""
    segmentation = engine.segmentation("text")
    assert isinstance(segmentation, TextSegmentation)
    params = engine.params
    # Tokens joined by spaces and split on whitespace: LIME's words are exactly the encoder's
    # tokens, position by position (bow=False), and a removed one leaves only a space behind.
    explainer = LimeTextExplainer(
        split_expression=r"\s+", bow=False, mask_string="", feature_selection="none", random_state=params.seed
    )
    result = explainer.explain_instance(
        " ".join(segmentation.tokens),
        classifier_fn=lambda texts: engine.evaluate_values("text", list(texts)),
        labels=(target,),
        num_features=segmentation.n_segments,
        num_samples=params.lime_samples,
    )
    return _weights(result.local_exp[target], segmentation.n_segments)


def lime_audio_scores(engine: PerturbationEngine, target: int) -> np.ndarray:
    """``[n_segments]`` LIME weights of audio time (x frequency) segments, audioLIME-style."""
    segmentation = engine.segmentation("audio")
    assert isinstance(segmentation, AudioSegmentation)
    params = engine.params
    random_state = np.random.RandomState(params.seed)
    n_segments = segmentation.n_segments
    data = random_state.randint(0, 2, size=(params.lime_samples, n_segments))
    data[0] = 1  # the unperturbed sample, as lime_image does
    labels = engine.evaluate_masks({"audio": data})
    distances = pairwise_distances(data, data[:1], metric="cosine").ravel()

    def kernel(d: np.ndarray) -> np.ndarray:
        return np.sqrt(np.exp(-(d**2) / KERNEL_WIDTH**2))

    base = LimeBase(kernel, random_state=params.seed)
    _, local_explanation, _, _ = base.explain_instance_with_data(
        data, labels, distances, target, n_segments, feature_selection="none"
    )
    return _weights(local_explanation, n_segments)


SCORERS = {"image": lime_image_scores, "text": lime_text_scores, "audio": lime_audio_scores}


def lime_explanation(engine: PerturbationEngine, target: int, modalities: list[str]) -> Explanation:
    """LIME weights of ``engine``'s sample for class ``target``, one local model per modality."""
    started = time.perf_counter()
    evaluations_before = engine.evaluations
    engine.expect(engine.params.lime_samples * len(modalities))
    scores = {m: SCORERS[m](engine, target) for m in modalities}
    explanation = engine.attribution("lime", target, scores)
    explanation.metadata.update(
        {
            "explainer": "lime (lime_image, lime_text, lime_base)",
            "evaluations": engine.evaluations - evaluations_before,
            "runtime_s": time.perf_counter() - started,
        }
    )
    return explanation


class LimeExplainer(Explainer):
    """LIME, one local linear model per modality (lime_image, lime_text, lime_base)."""

    name = "lime"
    label = "LIME"
    seeded = True

    def cost(self, params: ExplainParams, n_modalities: int) -> float:
        return float(params.lime_samples * n_modalities)

    def explain(self, engine: PerturbationEngine, target: int, modalities: list[str]) -> Explanation:
        return lime_explanation(engine, target, modalities)
