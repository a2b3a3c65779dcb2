"""What a training run is asked to do: its hyper-parameters and the models it trains."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.errors import TrainingError
from core.fusion import FUSION_NAMES
from core.tasks import SINGLE_TASK_SEPARATOR

BASELINE_SUFFIX = "-only"
"""``<modality>-only``: the unimodal baseline of a modality (its encoder plus a small head)."""




@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in each checkpoint's card).

    ``tasks`` chooses the dataset's tasks a model learns (``None``: all of them);
    ``task_weighting`` is ``fixed`` (``task_weights``, default 1 each) or ``uncertainty``
    (learned, Kendall et al. 2018); see :mod:`core.train.loss`.
    ``augment`` maps a modality to the transforms applied to its built-in encoder's training
    inputs (:mod:`core.train.augment`; none by default). ``class_weights`` is ``none`` or
    ``auto`` (inverse class frequency in the loss) and ``balanced_sampler`` draws each epoch's
    rows class-balanced (:mod:`core.train.imbalance`).
    """

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
    tasks: tuple[str, ...] | None = None
    task_weighting: str = "fixed"
    task_weights: dict[str, float] = field(default_factory=dict)
    augment: dict[str, tuple[str, ...]] = field(default_factory=dict)
    class_weights: str = "none"
    balanced_sampler: bool = False


@dataclass
class TrainResult:
    """One trained (or, with ``resume``, already complete) checkpoint."""

    name: str
    path: Path
    metrics: dict[str, dict[str, float]]
    epochs: int
    seconds: float


def parse_model_names(spec: str, modalities: list[str], tasks: list[str] | None = None) -> list[str]:
    """``"all"`` (the six fusions), ``"baselines"`` (one ``<m>-only`` per modality),
    ``"single-task"`` (every fusion asked for, once per task, when there are several), or a
    comma list mixing them, e.g. ``"early,gated,image-only,early.pitch"``.

    Raises:
        TrainingError: an unknown name, or a baseline of a modality the dataset lacks.
    """
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part == "all":
            names += list(FUSION_NAMES)
        elif part == "single-task":
            continue  # expanded below, once every fusion is known
        elif SINGLE_TASK_SEPARATOR in part and part.split(SINGLE_TASK_SEPARATOR, 1)[0] in FUSION_NAMES:
            fusion, task = part.split(SINGLE_TASK_SEPARATOR, 1)
            if task not in (tasks or []):
                raise TrainingError(f"{part}: the dataset has no task {task!r} (its tasks: {', '.join(tasks or [])}).")
            names.append(part)
        elif part == "baselines":
            names += [f"{m}{BASELINE_SUFFIX}" for m in modalities]
        elif part in FUSION_NAMES or part.endswith(BASELINE_SUFFIX) and part[: -len(BASELINE_SUFFIX)] in modalities:
            names.append(part)
        elif part.endswith(BASELINE_SUFFIX):
            raise TrainingError(
                f"{part}: the dataset has no {part[: -len(BASELINE_SUFFIX)]!r} modality (it has {', '.join(modalities)})."
            )
        else:
            raise TrainingError(
                f"Unknown model {part!r}: use all, baselines, {', '.join(FUSION_NAMES)} or "
                + ", ".join(f"{m}{BASELINE_SUFFIX}" for m in modalities)
            )
    if "single-task" in [p.strip() for p in spec.split(",")] and tasks and len(tasks) > 1:
        names += [f"{n}{SINGLE_TASK_SEPARATOR}{t}" for n in list(names) if n in FUSION_NAMES for t in tasks]
    if not names:
        raise TrainingError("Choose at least one strategy or baseline to train.")
    return list(dict.fromkeys(names))


def split_model_name(name: str) -> tuple[str, str | None]:
    """``(fusion or baseline, task)`` of a model name; the task is ``None`` for multi-task models."""
    base, sep, task = name.partition(SINGLE_TASK_SEPARATOR)
    return (base, task) if sep and base in FUSION_NAMES else (name, None)
