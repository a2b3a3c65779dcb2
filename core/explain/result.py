"""The one result shape shared by every explanation method; JSON through :mod:`core.serialization`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.serialization import JsonMixin


@dataclass
class FaithfulnessCurves(JsonMixin):
    """Deletion and insertion curves of one explanation.

    Attributes:
        fractions: ``[K]`` share of features removed (deletion) or inserted (insertion), 0..1.
        deletion: ``[K]`` target probability after removing the top-attributed fraction.
        insertion: ``[K]`` target probability with only the top-attributed fraction kept.
        deletion_auc: area under ``deletion`` (lower = more faithful).
        insertion_auc: area under ``insertion`` (higher = more faithful).
        random_deletion_auc, random_insertion_auc: the same areas for a random feature order,
            the reference an attribution should beat.
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: float
    insertion_auc: float
    random_deletion_auc: float
    random_insertion_auc: float


@dataclass
class Explanation(JsonMixin):
    """Attributions of one sample's prediction by one method.

    Attributes:
        method: the registry name of the method (``"modality"``, ``"shap"``, ``"lime"``,
            ``"integrated_gradients"``, ...).
        target: index of the explained class within ``task``; ``target_name`` its name.
        classes: the task's class names (or labels), index i = probability i.
        probabilities: ``[C]`` predicted probabilities of the unperturbed sample.
        modality_totals: per modality, its total attribution (modality Shapley value, or the
            sum of its segment attributions for SHAP/LIME).
        image: ``[H, W]`` attribution map at the original image size, or ``None``.
        tokens: ``[(token, score)]`` in text order, or ``None``.
        audio: ``[n_mels, frames]`` attribution map, or ``None``.
        audio_times: ``[frames]`` frame centres in seconds (of the clip the encoder sees).
        audio_freqs: ``[n_mels]`` mel band centres in Hz.
        audio_spectrogram: ``[n_mels, frames]`` log-mel (dB) the map is drawn over.
        segment_scores: per modality, ``[n_segments]`` scores of the units the method perturbed
            (superpixels, tokens, audio segments); quality checks rank these.
        interactions: ``[M, M]`` pairwise Shapley interaction indices (modality method only),
            rows/columns in ``interaction_modalities`` order; the diagonal is zero.
        faithfulness: deletion/insertion curves (segment-based methods), or ``None``.
        metadata: method, parameters, target, ``runtime_s``, ``evaluations``, ``device``, ...
        task: the task explained (a multi-label task's probabilities are per-label sigmoids).
    """

    method: str
    target: int
    target_name: str
    classes: list[str]
    probabilities: np.ndarray
    modality_totals: dict[str, float]
    image: np.ndarray | None = None
    tokens: list[tuple[str, float]] | None = None
    audio: np.ndarray | None = None
    audio_times: np.ndarray | None = None
    audio_freqs: np.ndarray | None = None
    audio_spectrogram: np.ndarray | None = None
    segment_scores: dict[str, np.ndarray] = field(default_factory=dict)
    interactions: np.ndarray | None = None
    interaction_modalities: list[str] = field(default_factory=list)
    faithfulness: FaithfulnessCurves | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    task: str = "label"

    def maps(self) -> dict[str, np.ndarray]:
        """Per modality, the attribution map as a flat-comparable array: the image ``[H, W]``,
        the audio grid ``[n_mels, frames]``, the token scores ``[n_tokens]``."""
        out = {}
        if self.image is not None:
            out["image"] = np.asarray(self.image, dtype=np.float64)
        if self.audio is not None:
            out["audio"] = np.asarray(self.audio, dtype=np.float64)
        if self.tokens is not None:
            out["text"] = np.array([score for _, score in self.tokens], dtype=np.float64)
        return out
