"""Settings of every explanation method, in one place (and in every result's metadata)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.errors import ExplanationError

SHAP_ALGORITHMS = ("partition", "permutation")


@dataclass(frozen=True)
class ExplainParams:
    """Settings shared by modality Shapley, SHAP and LIME.

    Attributes:
        image_segments: superpixels (SLIC) or grid cells an image is split into.
        image_segmentation: ``"slic"`` or ``"grid"``.
        image_baseline: what a removed image region becomes for SHAP and quality checks:
            ``"blur"`` (Gaussian-blurred image) or ``"mean"`` (the region's mean colour, as LIME does).
        audio_time_segments: time slices of the audio.
        audio_freq_bands: mel-frequency bands per time slice (builtin log-mel encoder only;
            waveform encoders are masked in time alone).
        lime_samples: perturbed samples per modality for LIME.
        shap_evals: model evaluations for the joint SHAP explainer (for ``"permutation"``,
            raised to one full forward+backward permutation, ``2 * features + 1``, when smaller).
        shap_algorithm: ``"partition"`` (Owen values over a hierarchy of modalities and nearby
            segments; few large batches) or ``"permutation"`` (sampled Shapley values of the
            flat game; one model call per permutation).
        seed: seeds LIME's sampling and SHAP's permutations and tie-breaks.
        batch_size: perturbations per encoder call (halved automatically on out-of-memory).
        modalities: restrict SHAP/LIME to these modalities (``None``: every present one).
        faithfulness_steps: points on each deletion/insertion curve (plus the start).
        include_logit: modality Shapley also reports values for the target logit.
    """

    image_segments: int = 50
    image_segmentation: str = "slic"
    image_baseline: str = "blur"
    audio_time_segments: int = 10
    audio_freq_bands: int = 4
    lime_samples: int = 1000
    shap_evals: int = 500
    shap_algorithm: str = "partition"
    seed: int = 0
    batch_size: int = 256
    modalities: tuple[str, ...] | None = None
    faithfulness_steps: int = 10
    include_logit: bool = False

    def __post_init__(self) -> None:
        if self.image_segmentation not in ("slic", "grid"):
            raise ExplanationError(f"image_segmentation must be 'slic' or 'grid', not {self.image_segmentation!r}")
        if self.shap_algorithm not in SHAP_ALGORITHMS:
            raise ExplanationError(f"shap_algorithm must be 'partition' or 'permutation', not {self.shap_algorithm!r}")
        if self.image_baseline not in ("blur", "mean"):
            raise ExplanationError(f"image_baseline must be 'blur' or 'mean', not {self.image_baseline!r}")
        if min(self.image_segments, self.audio_time_segments, self.audio_freq_bands, self.batch_size) < 1:
            raise ExplanationError("segment counts and batch_size must be at least 1")
        if self.lime_samples < 10 or self.shap_evals < 10:
            raise ExplanationError("lime_samples and shap_evals must be at least 10")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["modalities"] = list(self.modalities) if self.modalities is not None else None
        return out
