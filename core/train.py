"""Training: unimodal encoders first, then every fusion strategy on the same frozen encoders.

Stage 1 trains each built-in encoder end to end as a unimodal classifier (these
are also the ``<modality>-only`` baselines); pretrained encoders are used frozen
as they are. Stage 2 trains each fusion strategy's fusion module and head on
cached embeddings of those encoders, with modality dropout so that missing
modalities at inference are in-distribution. Because every strategy sees the
very same encoders, differences between checkpoints are due to fusion alone,
and a fusion head trains in seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from core import distributed
from core.checkpoints import CheckpointError, load_checkpoint, read_card, save_checkpoint
from core.data import Dataset, Record, load_modality
from core.device import autocast, describe_device, move_to, pick_device
from core.embeddings import EmbeddedRecords, classify_embedded, embed_records, labels_to_indices
from core.encoders import encoder_from_choice
from core.encoders.base import Encoder
from core.encoders.cache import EmbeddingCache
from core.evaluate import headline_metrics
from core.fusion import FUSIONS, build_fusion
from core.model import MultimodalClassifier
from core.train_state import FitState, clear_fit_state, load_fit_state, save_fit_state

BASELINE_SUFFIX = "-only"
ProgressCallback = Callable[[dict[str, Any]], None]


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
    name: str
    path: Path
    metrics: dict[str, dict[str, float]]
    epochs: int
    seconds: float


def parse_model_names(spec: str, modalities: list[str]) -> list[str]:
    """``"all"`` (the six fusions), ``"baselines"`` (one ``<m>-only`` per modality), or a
    comma list mixing both, e.g. ``"early,gated,image-only"``."""
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
            raise ValueError(
                f"{part}: the dataset has no {part[: -len(BASELINE_SUFFIX)]!r} modality (it has {', '.join(modalities)})."
            )
        else:
            raise ValueError(
                f"Unknown model {part!r}: use all, baselines, {', '.join(FUSIONS)} or "
                + ", ".join(f"{m}{BASELINE_SUFFIX}" for m in modalities)
            )
    return list(dict.fromkeys(names))


@dataclass
class _TrainingSet:
    """Rows of one split: prepared inputs for encoders being trained, embeddings for frozen ones."""

    inputs: dict[str, list[Any]]
    embeddings: dict[str, torch.Tensor]
    present: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    return torch.Generator().manual_seed(seed)


def _batch_embeddings(
    model: MultimodalClassifier, data: _TrainingSet, idx: torch.Tensor, present: torch.Tensor, device: torch.device
) -> dict[str, torch.Tensor]:
    out = {}
    for j, m in enumerate(model.modalities):
        if m in data.embeddings:
            out[m] = data.embeddings[m][idx].to(device, non_blocking=True)
            continue
        enc: Encoder = model.encoders[m]
        rows = present[:, j].nonzero().flatten()
        full = torch.zeros(len(idx), enc.out_dim, device=device)
        if len(rows):
            batch = enc.collate([data.inputs[m][int(idx[r])] for r in rows])
            full[rows.to(device)] = enc(move_to(batch, device)).to(full.dtype)
        out[m] = full
    return out


def _predict(
    model: MultimodalClassifier, data: _TrainingSet, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    model.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(data)))
            present = data.present[idx]
            with autocast(device):
                logits = model.classify(_batch_embeddings(model, data, idx, present, device), present)
            chunks.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, len(model.classes)))


class _TrainStep(nn.Module):
    """One forward pass over batch rows ``idx``: the module DistributedDataParallel wraps."""

    def __init__(self, model: MultimodalClassifier, data: _TrainingSet, device: torch.device):
        super().__init__()
        self.model = model
        self.data = data
        self.device = device

    def forward(self, idx: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return self.model.classify(_batch_embeddings(self.model, self.data, idx, present, self.device), present)


def _predict_distributed(model: MultimodalClassifier, data: _TrainingSet, device: torch.device) -> np.ndarray:
    """Validation predictions, each rank taking every world-th row, gathered in row order."""
    ctx = distributed.context()
    if not ctx.enabled:
        return _predict(model, data, device)
    rows = torch.arange(ctx.rank, len(data), ctx.world)
    part = _TrainingSet(
        {m: [v[i] for i in rows.tolist()] for m, v in data.inputs.items()},
        {m: e[rows] for m, e in data.embeddings.items()},
        data.present[rows],
        data.labels[rows],
    )
    gathered = distributed.all_gather_objects((rows.numpy(), _predict(model, part, device)))
    out = np.zeros((len(data), len(model.classes)), dtype=np.float32)
    for r, proba in gathered:
        out[r] = proba
    return out


def _fit(
    model: MultimodalClassifier,
    params: list[nn.Parameter],
    train: _TrainingSet,
    val: _TrainingSet,
    *,
    epochs: int,
    lr: float,
    config: TrainConfig,
    modality_dropout: float,
    device: torch.device,
    label: str,
    show_progress: bool,
    callback: ProgressCallback | None,
    state_dir: Path | None = None,
    state_key: str = "",
    resume: bool = False,
) -> tuple[list[dict[str, float]], int]:
    """Train ``params`` with AdamW + cosine decay, early-stopping on validation loss.

    Under torchrun each rank takes its share of every global batch (a distributed sampler
    over the same seeded permutation) and DistributedDataParallel averages the gradients,
    so N ranks see the same batches as one process. After each epoch rank 0 writes the
    training state to ``state_dir``; with ``resume`` a saved state is continued.
    Leaves the best epoch's weights in ``model`` and returns (history, best epoch).
    """
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DistributedSampler

    ctx = distributed.context()
    _seed_everything(config.seed)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    loss_fn = nn.CrossEntropyLoss()
    step: nn.Module = _TrainStep(model, train, device)
    if ctx.enabled:
        step = DistributedDataParallel(step, device_ids=None, find_unused_parameters=True)
    state = FitState()
    if resume and state_dir is not None:
        state = load_fit_state(state_dir, model, optimizer, scheduler, state_key) or FitState()
    sampler = DistributedSampler(
        range(len(train)), num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=config.seed
    )
    per_rank_batch = max(1, config.batch_size // ctx.world)
    bar = tqdm(
        range(state.epoch + 1, epochs + 1),
        desc=label,
        unit="epoch",
        disable=not (show_progress and ctx.is_main),
        leave=True,
        initial=state.epoch,
        total=epochs,
    )
    for epoch in bar:
        if state.stale >= config.patience:
            break
        model.train()
        sampler.set_epoch(epoch)
        mine = torch.tensor(list(iter(sampler)), dtype=torch.long)
        # Dropout masks are drawn per sample and epoch, so every rank (and a resumed run)
        # drops the same modalities as a single uninterrupted process would.
        mask_gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        keep_all = torch.rand((len(train), train.present.shape[1]), generator=mask_gen) >= modality_dropout
        total_loss, seen = 0.0, 0
        for start in range(0, len(mine), per_rank_batch):
            idx = mine[start : start + per_rank_batch]
            present = train.present[idx]
            if modality_dropout > 0 and present.shape[1] > 1:
                present = present & keep_all[idx]
            y = train.labels[idx].to(device)
            with autocast(device):
                loss = loss_fn(step(idx, present).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            total_loss += float(loss.detach()) * len(idx)
            seen += len(idx)
        scheduler.step()
        total_loss, seen = distributed.all_reduce_sum([total_loss, seen])
        val_metrics = headline_metrics(val.labels.numpy(), _predict_distributed(model, val, device))
        record = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "val_loss": val_metrics.get("log_loss", float("nan")),
            "val_accuracy": val_metrics.get("accuracy", float("nan")),
        }
        state.history.append(record)
        state.epoch = epoch
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=f"{record['val_accuracy']:.3f}")
        if callback is not None and ctx.is_main:
            callback({"event": "epoch", "model": label, "epochs": epochs, **record})
        score = (record["val_loss"], -record["val_accuracy"])
        if score < state.best:
            state.best, state.best_epoch, state.stale = score, epoch, 0
            state.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state.stale += 1
        if state_dir is not None and ctx.is_main:
            save_fit_state(state_dir, state, model, optimizer, scheduler, state_key)
    bar.close()
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    return state.history, state.best_epoch


def _prepared_inputs(records: list[Record], encoder: Encoder, modality: str, limits) -> list[Any]:
    out: list[Any] = []
    for rec in records:
        value = load_modality(rec, modality, limits)
        out.append(encoder.prepare(value) if value is not None else None)
    return out


def _present_matrix(records: list[Record], modalities: list[str]) -> torch.Tensor:
    return torch.tensor([[getattr(r, m) is not None for m in modalities] for r in records], dtype=torch.bool).reshape(
        len(records), len(modalities)
    )


class Trainer:
    """Trains the requested models on one dataset and writes their checkpoints.

    Built-in encoders are trained first (stage 1) and always saved as the ``<m>-only``
    baselines, since every fusion checkpoint is built on them; fusion heads follow
    (stage 2). Under torchrun every rank runs this, rank 0 alone writes files.

    Args:
        dataset: a validated :class:`core.data.Dataset`.
        out_dir: checkpoints are written to ``out_dir/<name>``; per-epoch training state
            to ``out_dir/.state/<name>`` until the checkpoint is complete.
        config: hyper-parameters and encoder choices.
        cache: on-disk embedding cache (``None`` disables it).
        show_progress: tqdm bars on stderr.
        callback: receives progress events (``{"event": ...}``) for UIs.
        resume: keep checkpoints already complete for this dataset and config, and continue
            interrupted ones from their last saved epoch.
    """

    def __init__(
        self,
        dataset: Dataset,
        out_dir: str | Path,
        config: TrainConfig | None = None,
        *,
        cache: EmbeddingCache | None = None,
        show_progress: bool = True,
        callback: ProgressCallback | None = None,
        resume: bool = False,
    ):
        self.dataset = dataset
        self.out_dir = Path(out_dir)
        self.config = config or TrainConfig()
        self.cache = cache
        self.show_progress = show_progress
        self.ctx = distributed.context()
        self.callback = callback if self.ctx.is_main else None
        self.resume = resume
        self.device = distributed.device_for_rank(pick_device(self.config.device))
        self.modalities = dataset.modalities()
        self.classes = dataset.classes
        self.splits = {s: dataset.split(s) for s in ("train", "val", "test")}
        if not self.splits["train"]:
            raise ValueError("The dataset has no training rows.")
        if not self.splits["val"]:
            raise ValueError("The dataset has no validation rows (split 'val'); early stopping needs them.")
        self._config_json = json.loads(json.dumps(asdict(self.config)))
        self._encoders: dict[str, Encoder] = {}
        self._results: dict[str, TrainResult] = {}

    def _emit(self, **event: Any) -> None:
        if self.callback is not None:
            self.callback(event)

    def run(self, names: list[str]) -> list[TrainResult]:
        """Train every model in ``names`` (fusion names and ``<m>-only`` baselines)."""
        self._emit(event="start", models=names, device=describe_device(self.device))
        if self.resume:
            for name in names:
                done = self._completed(name)
                if done is not None:
                    self._results[name] = done
                    self._emit(event="skipped", model=name, path=str(done.path), reason="already complete")
        for name in names:
            if name.endswith(BASELINE_SUFFIX) and name not in self._results:
                self._save_baseline(name[: -len(BASELINE_SUFFIX)])
        fusions = [n for n in names if n in FUSIONS and n not in self._results]
        if fusions:
            embedded = self._embed_all()
            for name in fusions:
                self._train_fusion(name, embedded)
        results = [self._results[n] for n in names]
        self._emit(event="done", results=[{"name": r.name, "path": str(r.path), "metrics": r.metrics} for r in results])
        return results

    def _completed(self, name: str) -> TrainResult | None:
        """The checkpoint ``name`` if it is complete and was trained on this dataset with this config."""
        try:
            card = read_card(self.out_dir / name)
        except CheckpointError:
            return None
        if card.get("dataset", {}).get("fingerprint") != self.dataset.fingerprint:
            return None
        if card.get("training", {}).get("config") != self._config_json:
            return None
        return TrainResult(name, self.out_dir / name, card.get("metrics", {}), card["training"]["epochs_run"], 0.0)

    def _state_dir(self, name: str) -> Path:
        return self.out_dir / ".state" / name

    def _state_key(self, name: str, model: MultimodalClassifier) -> str:
        spec = {
            "name": name,
            "dataset": self.dataset.fingerprint,
            "config": self._config_json,
            "tensors": {k: list(v.shape) for k, v in model.state_dict().items()},
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    def encoder(self, modality: str) -> Encoder:
        """The encoder for ``modality``: trained here (built-in) or loaded frozen (pretrained)."""
        if modality not in self._encoders:
            choice = self.config.encoders.get(modality, "builtin")
            corpus = [r.text for r in self.splits["train"] if r.text] if modality == "text" else None
            torch.manual_seed(self.config.seed)
            enc = encoder_from_choice(modality, choice, corpus=corpus).to(self.device)
            if enc.trainable:
                name = f"{modality}{BASELINE_SUFFIX}"
                done = self._results.get(name) or (self._completed(name) if self.resume else None)
                if done is not None:
                    enc = load_checkpoint(done.path, device=self.device).model.encoders[modality]
                    self._results[name] = done
                else:
                    self._train_encoder(modality, enc)
            enc.eval()
            enc.requires_grad_(False)
            self._encoders[modality] = enc
        return self._encoders[modality]

    def _unimodal_model(self, modality: str, enc: Encoder) -> MultimodalClassifier:
        torch.manual_seed(self.config.seed)
        fusion = build_fusion(
            "early",
            in_dims={modality: enc.out_dim},
            num_classes=len(self.classes),
            hidden=self.config.hidden,
            dropout=self.config.dropout,
        )
        return MultimodalClassifier({modality: enc}, fusion, self.classes).to(self.device)

    def _train_encoder(self, modality: str, enc: Encoder) -> None:
        """Stage 1: the encoder and a unimodal head, end to end; saved as the baseline."""
        start = time.perf_counter()
        name = f"{modality}{BASELINE_SUFFIX}"
        self._emit(event="stage", stage=f"training the {modality} encoder")
        model = self._unimodal_model(modality, enc)
        sets = {}
        for split in ("train", "val"):
            recs = self.splits[split]
            sets[split] = _TrainingSet(
                inputs={modality: _prepared_inputs(recs, enc, modality, self.dataset.limits)},
                embeddings={},
                present=_present_matrix(recs, [modality]),
                labels=labels_to_indices([r.label for r in recs], self.classes),
            )
        history, best_epoch = self._fit(
            name, model, list(model.parameters()), sets, self.config.encoder_epochs, self.config.encoder_lr, 0.0
        )
        self._finish(name, "unimodal", model, history, best_epoch, time.perf_counter() - start)

    def _save_baseline(self, modality: str) -> None:
        name = f"{modality}{BASELINE_SUFFIX}"
        enc = self.encoder(modality)  # a built-in encoder is trained and saved as the baseline here
        if name in self._results:
            return
        # Frozen pretrained encoder: the baseline is a head on its cached embeddings.
        start = time.perf_counter()
        model = self._unimodal_model(modality, enc)
        embedded = self._embed_splits(model)
        history, best_epoch = self._fit_head(model, embedded, name, modality_dropout=0.0)
        self._finish(name, "unimodal", model, history, best_epoch, time.perf_counter() - start)

    def _embed_splits(self, model: MultimodalClassifier) -> dict[str, EmbeddedRecords]:
        self._emit(event="stage", stage="computing embeddings")
        bar = tqdm(desc="embeddings", unit="sample", disable=not (self.show_progress and self.ctx.is_main), leave=False)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        out = {
            split: embed_records(model, recs, cache=self.cache, limits=self.dataset.limits, progress=progress)
            for split, recs in self.splits.items()
        }
        bar.close()
        return out

    def _embed_all(self) -> dict[str, EmbeddedRecords]:
        encoders = {m: self.encoder(m) for m in self.modalities}
        probe = MultimodalClassifier(
            encoders,
            build_fusion("early", in_dims={m: e.out_dim for m, e in encoders.items()}, num_classes=len(self.classes)),
            self.classes,
        ).to(self.device)
        return self._embed_splits(probe)

    def _fit_head(
        self, model: MultimodalClassifier, embedded: dict[str, EmbeddedRecords], name: str, modality_dropout: float
    ) -> tuple[list[dict[str, float]], int]:
        sets = {
            split: _TrainingSet({}, embedded[split].embeddings, embedded[split].present, embedded[split].labels)
            for split in ("train", "val")
        }
        params = [p for n, p in model.named_parameters() if not n.startswith("encoders.")]
        return self._fit(name, model, params, sets, self.config.fusion_epochs, self.config.fusion_lr, modality_dropout)

    def _fit(
        self,
        name: str,
        model: MultimodalClassifier,
        params: list[nn.Parameter],
        sets: dict[str, _TrainingSet],
        epochs: int,
        lr: float,
        modality_dropout: float,
    ) -> tuple[list[dict[str, float]], int]:
        """:func:`_fit` with this run's device, progress, callback and resumable state."""
        return _fit(
            model,
            params,
            sets["train"],
            sets["val"],
            epochs=epochs,
            lr=lr,
            config=self.config,
            modality_dropout=modality_dropout,
            device=self.device,
            label=name,
            show_progress=self.show_progress,
            callback=self.callback,
            state_dir=self._state_dir(name),
            state_key=self._state_key(name, model),
            resume=self.resume,
        )

    def _train_fusion(self, name: str, embedded: dict[str, EmbeddedRecords]) -> None:
        start = time.perf_counter()
        self._emit(event="stage", stage=f"training {name} fusion")
        encoders = {m: self.encoder(m) for m in self.modalities}
        torch.manual_seed(self.config.seed)
        fusion = build_fusion(
            name,
            in_dims={m: e.out_dim for m, e in encoders.items()},
            num_classes=len(self.classes),
            hidden=self.config.hidden,
            dropout=self.config.dropout,
        )
        model = MultimodalClassifier(encoders, fusion, self.classes).to(self.device)
        history, best_epoch = self._fit_head(model, embedded, name, self.config.modality_dropout)
        self._finish(name, "fusion", model, history, best_epoch, time.perf_counter() - start, embedded)

    def _finish(
        self,
        name: str,
        kind: str,
        model: MultimodalClassifier,
        history: list[dict[str, float]],
        best_epoch: int,
        seconds: float,
        embedded: dict[str, EmbeddedRecords] | None = None,
    ) -> None:
        embedded = embedded if embedded is not None and set(model.modalities) == set(self.modalities) else None
        metrics = {}
        for split in ("val", "test"):
            if not self.splits[split]:
                continue
            if embedded is not None:
                data = embedded[split]
            else:
                data = embed_records(model, self.splits[split], cache=self.cache, limits=self.dataset.limits)
            metrics[split] = headline_metrics(data.labels.numpy(), classify_embedded(model, data))
        card = {
            "name": name,
            "kind": kind,
            "dataset": {
                "path": str(self.dataset.root),
                "fingerprint": self.dataset.fingerprint,
                "splits": {s: len(r) for s, r in self.splits.items()},
            },
            "preprocessing": {"sample_rate": 16000},
            "training": {
                "config": self._config_json,
                "device": describe_device(self.device),
                "world_size": self.ctx.world,
                "epochs_run": len(history),
                "best_epoch": best_epoch,
                "seconds": round(seconds, 3),
                "encoders_frozen_in_fusion": kind == "fusion",
                "history": history,
            },
            "metrics": metrics,
        }
        path = self.out_dir / name
        if self.ctx.is_main:
            save_checkpoint(model, path, card)
            clear_fit_state(self._state_dir(name))
        distributed.barrier()
        self._emit(event="saved", model=name, path=str(path), metrics=metrics)
        self._results[name] = TrainResult(name, path, metrics, len(history), seconds)
