"""The checkpoint card: what a checkpoint folder's ``card.json`` holds, typed and validated.

A card describes the architecture (fusion, encoders, classes), the weights (file, SHA-256,
tensor shapes) and the run that produced them (dataset fingerprint, training config,
metrics). :meth:`CheckpointCard.parse` validates everything a loader relies on before any
weight is touched, and raises :class:`~core.errors.CheckpointError` naming the problem.
:func:`read_card` reads one folder's card and :func:`list_checkpoints` lists a folder of
checkpoints from their cards; neither imports torch (the dashboard's first page lists
checkpoints). Weights are saved and loaded by :mod:`core.checkpoints`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from core.errors import CheckpointError
from core.fusion import FUSION_NAMES
from core.sample import MODALITIES
from core.serialization import JsonMixin
from core.settings import settings
from core.tasks import MULTI, PRIMARY, SINGLE, Task

T = TypeVar("T")

CARD_FORMAT = "fusion-checkpoint"
CARD_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"
MAX_CARD_BYTES = 5 * 1024 * 1024
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


@dataclass
class DatasetInfo(JsonMixin):
    """The dataset a checkpoint was trained on: folder, content fingerprint, rows per split."""

    path: str = ""
    fingerprint: str = ""
    splits: dict[str, int] = field(default_factory=dict)


@dataclass
class TrainingInfo(JsonMixin):
    """How a checkpoint was trained: the config (a :class:`core.train.TrainConfig` as JSON),
    device, epochs, time, and the per-epoch history (``epoch``, ``train_loss``, ``val_loss``...)."""

    config: dict[str, Any] = field(default_factory=dict)
    device: str = ""
    world_size: int = 1
    epochs_run: int = 0
    best_epoch: int = 0
    seconds: float = 0.0
    encoders_frozen_in_fusion: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class WeightsInfo(JsonMixin):
    """The weights file, its SHA-256 and the shape of every tensor it stores."""

    file: str = WEIGHTS_FILE
    sha256: str = ""
    tensors: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class CompressionInfo(JsonMixin):
    """How a compressed checkpoint was made from its parent (see :mod:`core.compress`).

    ``storage`` says how the weights file holds the tensors (``float32``, ``float16``, or
    ``int8``: quantised linear weights with per-channel scales). The same record is sealed in
    the weights file's safetensors metadata, so editing it in the card alone is refused.
    """

    method: str
    parameters: dict[str, Any]
    storage: str
    parent_name: str
    parent_sha256: str
    parent_path: str = ""


@dataclass
class CheckpointCard(JsonMixin):
    """Everything ``card.json`` records.

    ``classes`` are the primary task's; ``tasks`` every task in output order (empty on a
    single-task card: one task, ``label``, over ``classes``). ``metrics`` maps a split to
    headline metric values of the primary task (``accuracy``, ``balanced_accuracy``,
    ``f1_macro``, ``log_loss``, ``n``); ``task_metrics`` maps a task to the same per split.
    ``thresholds`` are the per-label decision thresholds of multi-label tasks (tuned on
    validation), ``task_weights`` the weights of each task's loss at the end of training.
    ``compression`` is set on a checkpoint made by compressing another one (its parent).
    """

    name: str
    fusion: str
    fusion_config: dict[str, Any]
    modalities: list[str]
    encoders: dict[str, dict[str, Any]]
    classes: list[str]
    weights: WeightsInfo
    kind: str = "fusion"
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    training: TrainingInfo = field(default_factory=TrainingInfo)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    parameters: dict[str, int] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    tasks: list[Task] = field(default_factory=list)
    task_metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    task_weights: dict[str, float] = field(default_factory=dict)
    compression: CompressionInfo | None = None
    format: str = CARD_FORMAT
    format_version: int = CARD_VERSION

    def model_tasks(self) -> list[Task]:
        """Every task of the model, in output order."""
        return list(self.tasks) or [Task(PRIMARY, SINGLE, tuple(self.classes))]
    @property
    def sha256(self) -> str:
        """The weights' SHA-256: what identifies a checkpoint in every cache key."""
        return self.weights.sha256

    def metric(self, split: str, name: str) -> float | None:
        value = self.metrics.get(split, {}).get(name)
        return float(value) if isinstance(value, (int, float)) else None

    @classmethod
    def parse(cls, data: Any, where: str) -> CheckpointCard:
        """Validate a card read from JSON and build it.

        Raises:
            CheckpointError: ``Checkpoint <where>: <what is wrong>``.
        """
        _validate(data, where)
        return build_card(cls, data, f"Checkpoint {where}")


def build_card(cls: type[T], data: dict[str, Any], prefix: str) -> T:
    """``cls.from_json(data)`` for a card that passed its checks; what still fails is a malformed card."""
    try:
        return cls.from_json(data)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise CheckpointError(f"{prefix}: the card is malformed ({err}).") from None


def check_card_header(card: Any, prefix: str, card_format: str, version: int) -> Callable[[str], NoReturn]:
    """The checks every card type starts with (a JSON object of this format and version, with a name);
    returns the ``fail(message)`` that raises :class:`CheckpointError` as ``<prefix>: <message>``."""

    def fail(message: str) -> NoReturn:
        raise CheckpointError(f"{prefix}: {message}")

    if not isinstance(card, dict):
        fail("the card is not a JSON object.")
    if card.get("format") != card_format:
        fail(f"the card's format is {card.get('format')!r}, expected {card_format!r}.")
    if card.get("format_version") != version:
        fail(f"card format version {card.get('format_version')!r} is not supported (expected {version}).")
    if not isinstance(card.get("name"), str):
        fail("'name' must be a string.")
    return fail


def check_weights_and_sections(card: dict, fail: Callable[[str], NoReturn], weights_file: str, sections: tuple[str, ...]) -> None:
    """The checks every card type ends with: ``weights`` names ``weights_file`` and its sha256,
    and each of ``sections`` that is present is a JSON object."""
    weights = card.get("weights")
    if not (isinstance(weights, dict) and weights.get("file") == weights_file and isinstance(weights.get("sha256"), str)):
        fail(f"'weights' must name {weights_file} and its sha256.")
    for section in sections:
        if section in card and not isinstance(card[section], dict):
            fail(f"'{section}' must be an object.")


def _validate(card: Any, where: str) -> None:
    fail = check_card_header(card, f"Checkpoint {where}", CARD_FORMAT, CARD_VERSION)
    if card.get("fusion") not in FUSION_NAMES:
        fail(f"unknown fusion strategy {card.get('fusion')!r}.")
    classes = card.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)):
        fail("'classes' must be a list of at least two class names.")
    if len(set(classes)) != len(classes):
        fail("'classes' contains duplicates.")
    encoders = card.get("encoders")
    if not (isinstance(encoders, dict) and encoders and set(encoders) <= set(MODALITIES)):
        fail(f"'encoders' must map modalities ({', '.join(MODALITIES)}) to encoder specs.")
    if not all(isinstance(s, dict) and isinstance(s.get("kind"), str) for s in encoders.values()):
        fail("every encoder spec must be an object with a 'kind'.")
    if not isinstance(card.get("modalities"), list) or sorted(card["modalities"]) != sorted(encoders):
        fail("'modalities' does not match 'encoders'.")
    config = card.get("fusion_config")
    if not isinstance(config, dict) or not isinstance(config.get("in_dims"), dict):
        fail("'fusion_config' is missing or malformed.")
    if sorted(config["in_dims"]) != sorted(encoders):
        fail("'fusion_config.in_dims' does not match 'encoders'.")
    tasks = card.get("tasks") or []
    if not isinstance(tasks, list) or not all(
        isinstance(t, dict)
        and isinstance(t.get("name"), str)
        and t.get("kind") in (SINGLE, MULTI)
        and isinstance(t.get("classes"), list)
        and t["classes"]
        and all(isinstance(c, str) for c in t["classes"])
        for t in tasks
    ):
        fail("'tasks' must list objects with a 'name', a 'kind' (single or multi) and 'classes'.")
    if len({t["name"] for t in tasks}) != len(tasks):
        fail("'tasks' must have distinct names.")
    if tasks and tasks[0]["classes"] != classes:
        fail(f"the first task's classes ({len(tasks[0]['classes'])}) differ from the card's 'classes' ({len(classes)}).")
    outputs = sum(len(t["classes"]) for t in tasks) if tasks else len(classes)
    if config.get("num_classes") != outputs:
        fail(f"'fusion_config.num_classes' is {config.get('num_classes')}, but the card's tasks have {outputs} outputs.")
    _validate_compression(card.get("compression"), fail)
    check_weights_and_sections(
        card,
        fail,
        WEIGHTS_FILE,
        ("task_metrics", "thresholds", "task_weights", "dataset", "training", "metrics", "parameters", "preprocessing", "versions"),
    )
    metrics = card.get("metrics", {})
    if not all(isinstance(values, dict) for values in metrics.values()):
        fail("'metrics' must map each split to an object of metric values.")
    history = card.get("training", {}).get("history", [])
    if not (isinstance(history, list) and all(isinstance(epoch, dict) for epoch in history)):
        fail("'training.history' must be a list of objects.")


def _validate_compression(compression: Any, fail) -> None:
    if compression is None:
        return
    text = ("method", "storage", "parent_name", "parent_sha256")
    if not (
        isinstance(compression, dict)
        and all(isinstance(compression.get(key), str) for key in text)
        and isinstance(compression.get("parameters"), dict)
    ):
        fail("'compression' must be an object with a method, its parameters, a storage and the parent's name and sha256.")


# --------------------------------------------------------------------------- reading and listing


def read_card(path: str | Path) -> CheckpointCard:
    """Read and validate ``card.json`` of checkpoint folder ``path`` without touching weights."""
    path = Path(path)
    return CheckpointCard.parse(read_card_json(path), path.name)


def read_card_json(path: Path) -> Any:
    """The parsed ``card.json`` of a checkpoint folder (not yet validated), refusing pickles,
    missing or oversized cards and invalid JSON with a :class:`CheckpointError`."""
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint folder (expected a folder with {CARD_FILE} and {WEIGHTS_FILE}).")
    card_path = path / CARD_FILE
    if not card_path.is_file():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(
                f"{path.name} holds {', '.join(pickles)}: pickle-based checkpoints are refused because "
                "loading them can run arbitrary code. Re-save the weights as safetensors with a card.json."
            )
        raise CheckpointError(f"{path.name} has no {CARD_FILE}.")
    if card_path.stat().st_size > MAX_CARD_BYTES:
        raise CheckpointError(f"{CARD_FILE} in {path.name} is larger than {MAX_CARD_BYTES // 1024 // 1024} MiB.")
    try:
        return json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{CARD_FILE} in {path.name} is not valid JSON ({err}).") from None
    except RecursionError:
        raise CheckpointError(f"{CARD_FILE} in {path.name} is nested too deeply to be a checkpoint card.") from None


@dataclass
class CheckpointInfo(JsonMixin):
    """One row of a checkpoint listing; an unreadable folder has ``error`` set and little else."""

    path: Path
    name: str
    fusion: str
    kind: str
    modalities: list[str]
    encoders: dict[str, str]
    classes: int
    parameters: int
    test_accuracy: float | None
    val_accuracy: float | None
    created_at: str
    error: str | None = None
    parent: str | None = None
    compression: str | None = None


def encoder_label(spec: dict[str, Any]) -> str:
    """Short human name of an encoder spec, e.g. ``builtin`` or ``hf:bert-base``."""
    kind = spec.get("kind", "?")
    name = spec.get("name")
    return f"{kind}:{name}" if name else kind


def list_checkpoints(root: str | Path | None = None) -> list[CheckpointInfo]:
    """Every checkpoint folder directly under ``root`` (default: the configured checkpoint
    folder); unreadable ones are listed with ``error``."""
    root = Path(root) if root is not None else settings().checkpoints
    if not root.is_dir():
        return []
    infos = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            card = read_card(path)
        except CheckpointError as err:
            infos.append(CheckpointInfo(path, path.name, "?", "?", [], {}, 0, 0, None, None, "", error=str(err)))
            continue
        infos.append(
            CheckpointInfo(
                path=path,
                name=card.name or path.name,
                fusion=card.fusion,
                kind=card.kind,
                modalities=list(card.modalities),
                encoders={m: encoder_label(s) for m, s in card.encoders.items()},
                classes=len(card.classes),
                parameters=int(card.parameters.get("total", 0)),
                test_accuracy=card.metric("test", "accuracy"),
                val_accuracy=card.metric("val", "accuracy"),
                created_at=card.created_at,
                parent=card.compression.parent_name if card.compression else None,
                compression=card.compression.method if card.compression else None,
            )
        )
    return infos
