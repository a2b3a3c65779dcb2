"""What a training run is asked to do: its hyper-parameters and the models it trains."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.errors import TrainingError
from core.fusion import FUSIONS

BASELINE_SUFFIX = "-only"
"""``<modality>-only``: the unimodal baseline of a modality (its encoder plus a small head)."""


@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in each checkpoint's card)."""

    encoders: dict[str, str] = field(default_factory=dict)
    hidden: int = 128
    batch_size: int = 64
    encoder_epochs: int = 30
    fusion_epochs: int = 60
    encoder_lr: float = 2e-3
    fusion_lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 8
    modality_dropout: float = 0.3
    dropout: float = 0.1
    seed: int = 0
    device: str | None = None


@dataclass
class TrainResult:
    """One trained (or, with ``resume``, already complete) checkpoint."""

    name: str
    path: Path
    metrics: dict[str, dict[str, float]]
    epochs: int
    seconds: float


def parse_model_names(spec: str, modalities: list[str]) -> list[str]:
    """``"all"`` (the six fusions), ``"baselines"`` (one ``<m>-only`` per modality), or a
    comma list mixing both, e.g. ``"early,gated,image-only"``.

    Raises:
        TrainingError: an unknown name, or a baseline of a modality the dataset lacks.
    """
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part == "all":
            names += list(FUSIONS)
        elif part == "baselines":
            names += [f"{m}{BASELINE_SUFFIX}" for m in modalities]
        elif part in FUSIONS or part.endswith(BASELINE_SUFFIX) and part[: -len(BASELINE_SUFFIX)] in modalities:
            names.append(part)
        elif part.endswith(BASELINE_SUFFIX):
            raise TrainingError(
                f"{part}: the dataset has no {part[: -len(BASELINE_SUFFIX)]!r} modality (it has {', '.join(modalities)})."
            )
        else:
            raise TrainingError(
                f"Unknown model {part!r}: use all, baselines, {', '.join(FUSIONS)} or "
                + ", ".join(f"{m}{BASELINE_SUFFIX}" for m in modalities)
            )
    if not names:
        raise TrainingError("Choose at least one strategy or baseline to train.")
    return list(dict.fromkeys(names))
