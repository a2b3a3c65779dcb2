"""Save, load and list checkpoints: a folder with ``model.safetensors`` + ``card.json``.

Nothing here ever unpickles. The card is validated before the weights are
touched, the weights file is checked against the SHA-256 recorded in the card,
and every tensor is checked against the architecture the card describes, so a
hostile or mismatched checkpoint is refused with a message naming the problem.
Writes are atomic: a temporary folder is filled, then renamed into place.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.atomic import staged_folder
from core.card import (
    CARD_FILE,
    CARD_FORMAT,
    WEIGHTS_FILE,
    CheckpointCard,
    CompressionInfo,
    DatasetInfo,
    TrainingInfo,
    WeightsInfo,
    read_card,
)
from core.encoders import build_encoder
from core.errors import CheckpointError, EncoderLoadError
from core.fusion import build_fusion
from core.hashing import sha256_file
from core.model import MultimodalClassifier
from core.roots import require_writable
from core.serialization import JsonMixin
from core.tasks import PRIMARY, SINGLE, Task


@dataclass
class LoadedCheckpoint:
    """A checkpoint in memory: the eval-mode model, its card and its folder."""

    model: MultimodalClassifier
    card: CheckpointCard
    path: Path

    @property
    def name(self) -> str:
        return self.card.name or self.path.name


def checkpoint_state(model: MultimodalClassifier) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint stores: everything except frozen pretrained encoders,
    whose weights come from their own package or directory (named in the card)."""
    frozen = tuple(f"encoders.{m}." for m in model.modalities if not model.encoders[m].trainable)
    return {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if not k.startswith(frozen)
    }


def build_model_from_card(card: CheckpointCard) -> MultimodalClassifier:
    """The architecture a card describes, with freshly initialised weights."""
    encoders = {m: build_encoder(m, spec) for m, spec in sorted(card.encoders.items())}
    fusion = build_fusion(card.fusion, **card.fusion_config)
    return MultimodalClassifier(encoders, fusion, card.classes, card.model_tasks())


def versions() -> dict[str, str]:
    import numpy
    import safetensors

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
    }


def save_checkpoint(
    model: MultimodalClassifier,
    path: str | Path,
    *,
    name: str,
    kind: str = "fusion",
    dataset: DatasetInfo | None = None,
    training: TrainingInfo | None = None,
    metrics: dict[str, dict[str, float]] | None = None,
    preprocessing: dict[str, Any] | None = None,
    task_metrics: dict[str, dict[str, dict[str, float]]] | None = None,
    thresholds: dict[str, dict[str, float]] | None = None,
    task_weights: dict[str, float] | None = None,
    compression: CompressionInfo | None = None,
) -> Path:
    """Write ``model`` and its card to folder ``path`` atomically; returns ``path``.

    The run's facts (name, dataset, training, metrics) come from the caller; the
    architecture fields (fusion, encoders, classes, weights hash) are filled in here from
    the model itself, so they can never disagree with the weights. A compressed model's
    ``compression`` record says how its tensors are stored and is sealed in the weights
    file's metadata too (see :mod:`core.compress.storage`).

    Raises:
        AccessError: the server is read-only (``FUSION_READ_ONLY``).
    """
    state = checkpoint_state(model) if compression is None else _compressed_state(model, compression.storage)

    def card(sha256: str) -> CheckpointCard:
        return CheckpointCard(
            name=name,
            kind=kind,
            fusion=model.fusion.name,
            fusion_config=model.fusion.config(),
            modalities=list(model.modalities),
            encoders={m: model.encoders[m].spec() for m in model.modalities},
            classes=list(model.classes),
            weights=WeightsInfo(sha256=sha256, tensors={k: list(v.shape) for k, v in state.items()}),
            dataset=dataset or DatasetInfo(),
            training=training or TrainingInfo(),
            metrics=metrics or {},
            parameters={"total": _parameter_count(model, compression), "stored": int(sum(v.numel() for v in state.values()))},
            preprocessing=preprocessing or {},
            # A card of one single-label task called "label" (every single-task dataset) stays as it always was.
            tasks=[] if model.tasks == [Task(PRIMARY, SINGLE, tuple(model.classes))] else list(model.tasks),
            task_metrics=task_metrics or {},
            thresholds=thresholds or {},
            task_weights=task_weights or {},
            compression=compression,
            versions=versions(),
            created_at=now_iso(),
        )

    return write_weights_and_card(path, state, WEIGHTS_FILE, _sealed_metadata(compression), card)


def now_iso() -> str:
    """The current UTC time as cards record it."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_weights_and_card(
    path: str | Path,
    state: dict[str, torch.Tensor],
    weights_file: str,
    metadata: dict[str, str],
    card: Callable[[str], JsonMixin],
) -> Path:
    """Write ``state`` as safetensors (with ``metadata``, e.g. the card format) and
    ``card(weights_sha256)`` as ``card.json`` into folder ``path``, atomically (a staged
    folder swapped in whole), both synced to disk; returns ``path``.

    Raises:
        AccessError: the server is read-only (``FUSION_READ_ONLY``).
    """
    from safetensors.torch import save_file

    require_writable()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged_folder(path) as tmp:
        save_file(state, str(tmp / weights_file), metadata=metadata)
        (tmp / CARD_FILE).write_text(json.dumps(card(sha256_file(tmp / weights_file)).to_json(), indent=2))
        for f in (tmp / weights_file, tmp / CARD_FILE):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    return path


def _check_declared_size(card: CheckpointCard, weights_size: int, where: str, storage: str = "float32") -> None:
    """Refuse a card whose stored parts (fusion head, built-in encoders) need more bytes than the
    weights file holds, before anything is allocated: a few edited numbers in a card must not make
    the loader allocate terabytes. The parts are built on the ``meta`` device, which allocates nothing;
    pretrained encoders are left out, their size comes from their own installed weights."""
    try:
        with torch.device("meta"):
            parts = [build_fusion(card.fusion, **card.fusion_config)]
            parts += [build_encoder(m, spec) for m, spec in sorted(card.encoders.items()) if spec.get("kind") == "builtin"]
    except EncoderLoadError as err:
        raise CheckpointError(f"Checkpoint {where}: {err}") from None
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"Checkpoint {where}: the card describes an invalid model ({err}).") from None
    needed = _min_stored_bytes(parts, storage)
    if needed > weights_size:
        raise CheckpointError(
            f"Checkpoint {where}: the card describes {needed:,} bytes of trained weights but {WEIGHTS_FILE} "
            f"holds {weights_size:,}; the card does not belong to these weights."
        )


def load_checkpoint(path: str | Path, device: torch.device | str | None = None) -> LoadedCheckpoint:
    """Load a checkpoint folder into an eval-mode model with gradients off.

    Raises:
        CheckpointError: pickles, missing files, a card that does not validate, a
            weights file whose hash differs from the card's, a compression record (parent,
            method, parameters) other than the one sealed in the weights file, or tensors
            whose names or shapes do not match the architecture the card describes.
    """
    path = Path(path)
    card = read_card(path)
    weights_path = verified_weights(path, WEIGHTS_FILE, card.sha256)
    storage = _check_sealed_compression(card, weights_path, path.name)
    _check_declared_size(card, weights_path.stat().st_size, path.name, storage)
    try:
        model = _stored_architecture(build_model_from_card(card), storage)
    except EncoderLoadError as err:
        raise CheckpointError(f"Checkpoint {path.name}: {err}") from None
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"Checkpoint {path.name}: the card describes an invalid model ({err}).") from None
    state = load_matching_state(weights_path, _compressed_state(model, storage), f"Checkpoint {path.name}", card.fusion)
    _restore_state(model, state, storage)
    model.eval()
    model.requires_grad_(False)
    if device is not None and storage != "int8":  # dynamically quantised kernels exist for the CPU only
        model.to(device)
    return LoadedCheckpoint(model=model, card=card, path=path)


def verified_weights(path: Path, weights_file: str, sha256: str) -> Path:
    """The weights file of checkpoint folder ``path``, once its SHA-256 matches the card's."""
    weights_path = path / weights_file
    if not weights_path.is_file():
        raise CheckpointError(f"Checkpoint {path.name} has no {weights_file}.")
    actual = sha256_file(weights_path)
    if actual != sha256:
        raise CheckpointError(
            f"Checkpoint {path.name}: {weights_file} was modified after it was saved "
            f"(sha256 {actual[:12]}..., card says {sha256[:12]}...)."
        )
    return weights_path


def load_matching_state(
    weights_path: Path, expected: dict[str, torch.Tensor], where: str, architecture: str
) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, once their names, shapes and dtypes match ``expected``
    (the state of the architecture the card describes); ``where`` starts each error message."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, OverflowError, MemoryError) as err:
        # The parser's error type for a malformed header varies across safetensors/torch builds
        # (seen: a different one on the CUDA machine); any of them means "not valid weights".
        raise CheckpointError(f"{where}: {weights_path.name} is not a valid safetensors file ({err}).") from None
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        raise CheckpointError(
            f"{where}: weights do not match the {architecture} architecture in the card: " + "; ".join(parts) + "."
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{where}: tensor {key} has shape {tuple(state[key].shape)} but the card's "
                f"architecture needs {tuple(tensor.shape)}."
            )
        # load_state_dict would silently cast, e.g. int8 noise into float weights.
        if state[key].dtype != tensor.dtype:
            raise CheckpointError(
                f"{where}: tensor {key} is {state[key].dtype} but the card's architecture needs {tensor.dtype}."
            )
    return state


# --------------------------------------------------------------------------- compressed checkpoints
# How compressed weights are stored lives in core.compress.storage (core.compress builds on this
# module, so it is imported when a compressed checkpoint is met); plain float32 weights never need it.


def _compressed_state(model: MultimodalClassifier, storage: str) -> dict[str, torch.Tensor]:
    if storage == "float32":
        return checkpoint_state(model)
    from core.compress.storage import stored_state

    return stored_state(model, storage)


def _stored_architecture(model: MultimodalClassifier, storage: str) -> MultimodalClassifier:
    from core.compress.storage import stored_architecture

    return model if storage == "float32" else stored_architecture(model, storage)


def _restore_state(model: MultimodalClassifier, state: dict[str, torch.Tensor], storage: str) -> None:
    if storage == "float32":
        model.load_state_dict(state, strict=False)
        return
    from core.compress.storage import restore_state

    restore_state(model, state, storage)


def _min_stored_bytes(parts: list[torch.nn.Module], storage: str) -> int:
    if storage == "float32":
        return sum(t.numel() * t.element_size() for part in parts for t in part.state_dict().values())
    from core.compress.storage import min_stored_bytes

    return min_stored_bytes(parts, storage)


def _parameter_count(model: MultimodalClassifier, compression: CompressionInfo | None) -> int:
    if compression is None:
        return model.parameter_count()
    from core.compress.storage import footprint

    return footprint(model)[0]


def _sealed_metadata(compression: CompressionInfo | None) -> dict[str, str]:
    """The weights file's metadata: the card format and, for a compressed model, its compression
    record, so that the record is covered by the weights' hash."""
    metadata = {"format": CARD_FORMAT}
    if compression is not None:
        metadata["compression"] = json.dumps(compression.to_json(), sort_keys=True)
    return metadata


def _check_sealed_compression(card: CheckpointCard, weights_path: Path, where: str) -> str:
    """The storage of the weights, once the card's compression record (or its absence) is found
    to be the one sealed in the (hash-checked) weights file.

    Raises:
        CheckpointError: the records differ (a card edited after saving: its parent, method or
            parameters), or the storage is unknown.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            sealed_text = (handle.metadata() or {}).get("compression")
        sealed = json.loads(sealed_text) if sealed_text is not None else None
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, OverflowError, MemoryError) as err:
        raise CheckpointError(f"Checkpoint {where}: {WEIGHTS_FILE} is not a valid safetensors file ({err}).") from None
    claimed = card.compression.to_json() if card.compression is not None else None
    if sealed != claimed:

        def describe(record: Any) -> str:
            if not isinstance(record, dict):
                return "no compression"
            return f"{record.get('method')!r} of parent {str(record.get('parent_sha256'))[:12]}..."

        raise CheckpointError(
            f"Checkpoint {where}: the card says {describe(claimed)} but {WEIGHTS_FILE} was saved with "
            f"{describe(sealed)}; the card's compression record was changed after saving."
        )
    if claimed is None:
        return "float32"
    from core.compress.storage import STORAGES

    storage = claimed["storage"]
    if storage not in STORAGES:
        raise CheckpointError(f"Checkpoint {where}: unknown weight storage {storage!r} (known: {', '.join(STORAGES)}).")
    return storage
