"""Training speed: why fusion heads train on cached embeddings, and what stage 1 costs.

- ``fusion_head``: one checkpoint's fusion strategy, freshly initialised on its frozen
  encoders, trained for a few epochs on the train split two ways, side by side:
  ``cached`` (embeddings computed once, ``embed_once_s``, then each epoch is fusion +
  head only, as :mod:`core.train` does) and ``reencode`` (the same head, each epoch
  preparing and encoding every decoded sample through the encoders again). Same
  batches, optimiser and modality dropout; decoding from disk is excluded from both.
  ``reencode_over_cached`` is the per-epoch ratio; ``speedup_full_run`` compares a
  whole run of ``TrainConfig.fusion_epochs`` epochs including the one-off embedding.
- ``encoder_stage1``: per builtin encoder, the epoch time of training it end to end
  with a unimodal head on prepared inputs (stage 1; validation passes excluded).

Options (all optional): ``data``, ``checkpoints``, ``checkpoint`` (name, default
``late``, else the first fusion checkpoint), ``device``, ``quick``, ``epochs``,
``max_samples`` (train records used).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.card import CheckpointCard, list_checkpoints
from core.checkpoints import load_checkpoint, versions
from core.data import Record, load_dataset, load_sample
from core.device import autocast, describe_device, move_to, pick_device
from core.embeddings import embed_records, labels_to_indices
from core.encoders import encoder_from_choice
from core.fusion import build_fusion
from core.model import MultimodalClassifier
from core.settings import settings
from core.timing import synchronize, timed
from core.train import TrainConfig

EmbedRows = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def _train_epoch(
    model: MultimodalClassifier,
    optimizer: torch.optim.Optimizer,
    labels: torch.Tensor,
    present: torch.Tensor,
    embed_rows: EmbedRows,
    *,
    batch_size: int,
    modality_dropout: float,
    generator: torch.Generator,
) -> float:
    """One epoch of cross-entropy training in shuffled batches; returns its seconds (device synced).

    ``embed_rows(idx)`` gives the embeddings of the rows ``idx``: from a cache, or through
    the encoders. Which modules train (and are in train mode) is the caller's choice.
    """
    device = model.device
    synchronize(device)
    started = time.perf_counter()
    order = torch.randperm(len(labels), generator=generator)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        mask = present[idx]
        if modality_dropout > 0 and mask.shape[1] > 1:
            mask = mask & (torch.rand(mask.shape, generator=generator) >= modality_dropout)
        with autocast(device):
            logits = model.classify(embed_rows(idx), mask)
            loss = nn.functional.cross_entropy(logits.float(), labels[idx].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return time.perf_counter() - started


def _fresh_head(loaded_model: MultimodalClassifier, card: CheckpointCard, seed: int) -> MultimodalClassifier:
    """The checkpoint's fusion strategy, newly initialised, on its (frozen) encoders."""
    torch.manual_seed(seed)
    fusion = build_fusion(card.fusion, **card.fusion_config)
    model = MultimodalClassifier(dict(loaded_model.encoders), fusion, loaded_model.classes).to(loaded_model.device)
    model.encoders.eval()
    model.encoders.requires_grad_(False)
    return model


def _head_optimizer(model: MultimodalClassifier, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for n, p in model.named_parameters() if not n.startswith("encoders.")]
    return torch.optim.AdamW(params, lr=config.fusion_lr, weight_decay=config.weight_decay)


def fusion_head_epochs(
    loaded_model: MultimodalClassifier, card: dict[str, Any], records: list[Record], config: TrainConfig, epochs: int
) -> dict[str, Any]:
    """Per-epoch seconds of the same head trained on cached embeddings and re-encoding every epoch."""
    device = loaded_model.device
    labels = labels_to_indices([r.label for r in records], loaded_model.classes)

    cached_model = _fresh_head(loaded_model, card, config.seed)
    embedded, embed_once_s = timed(lambda: embed_records(cached_model, records, cache=None), device)

    def timed_epochs(model: MultimodalClassifier, rows: EmbedRows) -> list[float]:
        """Seconds of each of ``epochs`` epochs of a fresh head fed by ``rows``; same seed, same batches."""
        optimizer = _head_optimizer(model, config)
        model.fusion.train()
        model.head.train()
        generator = torch.Generator().manual_seed(config.seed)
        return [
            _train_epoch(
                model,
                optimizer,
                labels,
                embedded.present,
                rows,
                batch_size=config.batch_size,
                modality_dropout=config.modality_dropout,
                generator=generator,
            )
            for _ in range(epochs)
        ]

    def cached_rows(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {m: e[idx].to(device, non_blocking=True) for m, e in embedded.embeddings.items()}

    cached = timed_epochs(cached_model, cached_rows)

    samples, decode_s = timed(lambda: [load_sample(r) for r in records], torch.device("cpu"))
    reencode_model = _fresh_head(loaded_model, card, config.seed)

    def reencoded_rows(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = reencode_model.prepare([samples[i] for i in idx.tolist()])
        with torch.no_grad():  # frozen encoders: no graph, exactly as much work as inference
            return reencode_model.embed(batch)

    reencode = timed_epochs(reencode_model, reencoded_rows)
    cached_epoch = float(np.median(cached))
    reencode_epoch = float(np.median(reencode))
    full_epochs = config.fusion_epochs
    return {
        "fusion": card.fusion,
        "samples": len(records),
        "epochs": epochs,
        "batch_size": config.batch_size,
        "embed_once_s": embed_once_s,
        "decode_once_s": decode_s,
        "cached_epoch_s": cached_epoch,
        "reencode_epoch_s": reencode_epoch,
        "cached_epochs_s": cached,
        "reencode_epochs_s": reencode,
        "reencode_over_cached": reencode_epoch / cached_epoch,
        "full_run_epochs": full_epochs,
        "speedup_full_run": (full_epochs * reencode_epoch) / (embed_once_s + full_epochs * cached_epoch),
    }


def encoder_stage1_epochs(
    modality: str,
    records: list[Record],
    classes: list[str],
    corpus: list[str],
    config: TrainConfig,
    epochs: int,
    device: torch.device,
) -> dict[str, Any]:
    """Per-epoch seconds of training the builtin ``modality`` encoder + a unimodal head end to end."""
    rows = [r for r in records if getattr(r, modality) is not None]
    torch.manual_seed(config.seed)
    encoder = encoder_from_choice(modality, "builtin", corpus=corpus)
    fusion = build_fusion("early", in_dims={modality: encoder.out_dim}, num_classes=len(classes), hidden=config.hidden)
    model = MultimodalClassifier({modality: encoder}, fusion, classes).to(device)
    values = [load_sample(r).get(modality) for r in rows]
    prepared, prepare_s = timed(lambda: [encoder.prepare(v) for v in values], torch.device("cpu"))
    labels = labels_to_indices([r.label for r in rows], classes)
    present = torch.ones(len(rows), 1, dtype=torch.bool)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.encoder_lr, weight_decay=config.weight_decay)
    model.train()

    def encoded_rows(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = encoder.collate([prepared[i] for i in idx.tolist()])
        return {modality: encoder(move_to(batch, device))}

    generator = torch.Generator().manual_seed(config.seed)
    seconds = [
        _train_epoch(
            model,
            optimizer,
            labels,
            present,
            encoded_rows,
            batch_size=config.batch_size,
            modality_dropout=0.0,
            generator=generator,
        )
        for _ in range(epochs)
    ]
    return {
        "samples": len(rows),
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "prepare_once_s": prepare_s,
        "epoch_s": float(np.median(seconds)),
        "epochs_s": seconds,
        "samples_per_s": len(rows) / float(np.median(seconds)),
    }


def _pick_checkpoint(root: Path, wanted: str | None) -> Path:
    infos = [i for i in list_checkpoints(root) if i.error is None]
    if wanted:
        return root / wanted
    fusions = [i for i in infos if i.kind == "fusion"]
    preferred = next((i for i in fusions if i.name == "late"), fusions[0] if fusions else None)
    if preferred is None:
        raise FileNotFoundError(f"No fusion checkpoint in {root}; build them with `python -m core demo`.")
    return preferred.path


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Measure fusion-head epochs (cached vs re-encoding) and builtin encoder epochs; returns a JSON-ready dict."""

    quick = bool(options.get("quick"))
    device = pick_device(options.get("device"))
    dataset = load_dataset(Path(options.get("data") or settings().demo_data))
    root = Path(options.get("checkpoints") or settings().checkpoints)
    loaded = load_checkpoint(_pick_checkpoint(root, options.get("checkpoint")), device=device)
    epochs = int(options.get("epochs", 2 if quick else 3))
    records = dataset.split("train")[: int(options.get("max_samples", 64 if quick else 100_000))]
    config = TrainConfig()
    corpus = [r.text for r in records if r.text]

    head = fusion_head_epochs(loaded.model, loaded.card, records, config, epochs)
    stage1 = {
        m: encoder_stage1_epochs(m, records, dataset.classes, corpus, config, epochs, device)
        for m in dataset.modalities()
    }
    return {
        "section": "train",
        "device": describe_device(device),
        "versions": versions(),
        "checkpoint": loaded.name,
        "split": "train",
        "settings": {
            "batch_size": config.batch_size,
            "modality_dropout": config.modality_dropout,
            "epochs_timed": epochs,
        },
        "fusion_head": head,
        "encoder_stage1": stage1,
    }
