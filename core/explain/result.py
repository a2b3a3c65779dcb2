"""The one result shape shared by every explanation method, and its JSON form."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


class ExplanationCancelled(Exception):
    """The caller's cancel flag was set while an explanation was being computed."""


@dataclass
class FaithfulnessCurves:
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
class Explanation:
    """Attributions of one sample's prediction by one method.

    Attributes:
        method: ``"modality"``, ``"shap"`` or ``"lime"``.
        target: index of the explained class; ``target_name`` its name.
        classes: class names of the model, index i = probability i.
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
        faithfulness: deletion/insertion curves (SHAP and LIME), or ``None``.
        metadata: method, parameters, target, ``runtime_s``, ``evaluations``, ``device``, ...
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: numpy arrays become (nested) lists."""
        out: dict[str, Any] = {}
        for f in fields(self):
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        def array(value: Any) -> np.ndarray | None:
            return None if value is None else np.asarray(value, dtype=np.float64)

        curves = data.get("faithfulness")
        return cls(
            method=data["method"],
            target=int(data["target"]),
            target_name=data["target_name"],
            classes=list(data["classes"]),
            probabilities=np.asarray(data["probabilities"], dtype=np.float64),
            modality_totals={k: float(v) for k, v in data["modality_totals"].items()},
            image=array(data.get("image")),
            tokens=None if data.get("tokens") is None else [(str(t), float(s)) for t, s in data["tokens"]],
            audio=array(data.get("audio")),
            audio_times=array(data.get("audio_times")),
            audio_freqs=array(data.get("audio_freqs")),
            audio_spectrogram=array(data.get("audio_spectrogram")),
            segment_scores={k: np.asarray(v, dtype=np.float64) for k, v in data.get("segment_scores", {}).items()},
            interactions=array(data.get("interactions")),
            interaction_modalities=list(data.get("interaction_modalities", [])),
            faithfulness=None
            if curves is None
            else FaithfulnessCurves(
                fractions=np.asarray(curves["fractions"]),
                deletion=np.asarray(curves["deletion"]),
                insertion=np.asarray(curves["insertion"]),
                deletion_auc=float(curves["deletion_auc"]),
                insertion_auc=float(curves["insertion_auc"]),
                random_deletion_auc=float(curves["random_deletion_auc"]),
                random_insertion_auc=float(curves["random_insertion_auc"]),
            ),
            metadata=dict(data.get("metadata", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> Explanation:
        return cls.from_dict(json.loads(text))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, FaithfulnessCurves):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
