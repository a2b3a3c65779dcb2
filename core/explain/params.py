"""Settings of every explanation method, in one place (and in every result's metadata)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.errors import ExplanationError

SHAP_ALGORITHMS = ("partition", "permutation")


@dataclass(frozen=True)
class ExplainParams:
    """Settings of every explanation method: modality Shapley, SHAP, LIME and the gradient methods.

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
        ig_steps: integration points of Integrated Gradients (Gauss-Legendre). On the demo
            models 64 points leave a median |convergence delta| of about 2 % of
            f(x) - f(baseline) (32: 6 %, 128: 1.4 %).
        ig_delta_tolerance: when set, IG doubles its steps (up to ``ig_max_steps``) until
            ``|delta| <= ig_delta_tolerance * max(|f(x) - f(baseline)|, 1e-3)``.
        ig_max_steps: the most steps that refinement may reach.
        gradient_batch_size: rows per IG forward/backward pass (``None``: about four million
            input values per pass, bounded by free GPU memory).
        gradient_shap_samples: random (baseline, point on the path) draws of GradientSHAP.
        gradient_shap_noise: GradientSHAP's input noise, a fraction of each modality's
            ``std(input - baseline)``.
        grad_cam_layer: the image encoder's layer Grad-CAM reads (``None``: the last conv block
            of the builtin CNN or of EfficientNet-Lite0).
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
    ig_steps: int = 64
    ig_delta_tolerance: float | None = None
    ig_max_steps: int = 512
    gradient_batch_size: int | None = None
    gradient_shap_samples: int = 16
    gradient_shap_noise: float = 0.05
    grad_cam_layer: str | None = None

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
        if min(self.ig_steps, self.ig_max_steps, self.gradient_shap_samples, self.gradient_batch_size or 1) < 1:
            raise ExplanationError("ig_steps, ig_max_steps, gradient_shap_samples and gradient_batch_size must be at least 1")
        if self.gradient_shap_noise < 0 or (self.ig_delta_tolerance is not None and self.ig_delta_tolerance <= 0):
            raise ExplanationError("gradient_shap_noise must be at least 0 and ig_delta_tolerance above 0")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["modalities"] = list(self.modalities) if self.modalities is not None else None
        return out
