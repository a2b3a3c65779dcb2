"""Training: unimodal encoders first, then every fusion strategy on the same frozen encoders.

Stage 1 trains each built-in encoder end to end as a unimodal classifier (these are also
the ``<modality>-only`` baselines); pretrained encoders are used frozen as they are.
Stage 2 trains each fusion strategy's fusion module and head on cached embeddings of
those encoders, with modality dropout so that missing modalities at inference are
in-distribution. Because every strategy sees the very same encoders, differences
between checkpoints are due to fusion alone, and a fusion head trains in seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from core import distributed
from core.card import DatasetInfo, TrainingInfo, read_card
from core.checkpoints import load_checkpoint, save_checkpoint
from core.data import Dataset, Record, load_modality
from core.device import describe_device, pick_device
from core.embeddings import EmbeddedRecords, embed_records
from core.encoders import encoder_from_choice
from core.encoders.base import Encoder
from core.encoders.cache import EmbeddingCache
from core.errors import CheckpointError, TrainingError
from core.evaluate.metrics import headline_metrics
from core.evaluate.multilabel import multilabel_metrics, tune_thresholds
from core.fusion import FUSION_NAMES, build_fusion
from core.inference import classify_proba
from core.io import SAMPLE_RATE
from core.model import MultimodalClassifier
from core.roots import require_writable
from core.tasks import Task
from core.train.ahead import InputsAhead
from core.train.augment import AugmentedInputs
from core.train.config import BASELINE_SUFFIX, TrainConfig, TrainResult, split_model_name
from core.train.events import ProgressCallback
from core.train.imbalance import check_class_options, inverse_frequency_weights
from core.train.loop import TrainingSet, fit, prepared_inputs
from core.train.loss import MultiTaskLoss, Targets
from core.train.resume import clear_fit_state
from core.train.side_by_side import can_run_side_by_side, run_side_by_side

SPLITS = ("train", "val", "test")


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
        callback: receives progress events (see :mod:`core.train.events`) for UIs.
        resume: keep checkpoints already complete for this dataset and config, and continue
            interrupted ones from their last saved epoch.

    Raises:
        TrainingError: the dataset has no training or no validation rows.
        AccessError: the server is read-only (``FUSION_READ_ONLY``).
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
        require_writable()  # refused before minutes of training, not when the first checkpoint is saved
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
        self.tasks = [dataset.task(name) for name in self.config.tasks] if self.config.tasks else list(dataset.tasks)
        MultiTaskLoss(self.tasks, self.config.task_weighting, self.config.task_weights)  # refuses bad options now
        check_class_options(self.config.class_weights, self.config.balanced_sampler, self.tasks[0])
        self.splits = {s: dataset.split(s) for s in SPLITS}
        if not self.splits["train"]:
            raise TrainingError("The dataset has no training rows.")
        if not self.splits["val"]:
            raise TrainingError("The dataset has no validation rows (split 'val'); early stopping needs them.")
        self._config_json = json.loads(json.dumps(asdict(self.config)))
        self._encoders: dict[str, Encoder] = {}
        self._results: dict[str, TrainResult] = {}
        self._targets_cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._side_by_side = False
        self._data_workers: int | None = None  # decoding workers of stage 1 (None: one per core)
        self._ahead = InputsAhead()  # stage 2's inputs, prepared during stage 1's tail

    def _emit(self, **event: Any) -> None:
        if self.callback is not None:
            self.callback(event)

    # ------------------------------------------------------------------ the run
    def run(self, names: list[str]) -> list[TrainResult]:
        """Train every model in ``names`` (fusion names and ``<m>-only`` baselines)."""
        self._emit(event="start", models=names, device=describe_device(self.device))
        if self.resume:
            for name in names:
                done = self._completed(name)
                if done is not None:
                    self._results[name] = done
                    self._emit(event="skipped", model=name, path=str(done.path), reason="already complete")
        fusions = [n for n in names if split_model_name(n)[0] in FUSION_NAMES and n not in self._results]
        baselines = [n[: -len(BASELINE_SUFFIX)] for n in names if n.endswith(BASELINE_SUFFIX)]
        needed = self.modalities if fusions else [m for m in baselines if f"{m}{BASELINE_SUFFIX}" not in self._results]
        self._prepare_encoders(needed, embed_early=bool(fusions))  # stage 1: trains the built-in encoders
        for modality in baselines:
            if f"{modality}{BASELINE_SUFFIX}" not in self._results:
                self._train_frozen_baseline(modality)
        if fusions:
            embedded = self._embed_splits(self._probe_model())
            self._train_all({name: (lambda name=name: self._train_fusion(name, embedded)) for name in fusions})
        results = [self._results[n] for n in names]
        self._emit(event="done", results=[{"name": r.name, "path": str(r.path), "metrics": r.metrics} for r in results])
        return results

    def _completed(self, name: str) -> TrainResult | None:
        """The checkpoint ``name`` if it is complete and was trained on this dataset with this config."""
        try:
            card = read_card(self.out_dir / name)
        except CheckpointError:
            return None
        if card.dataset.fingerprint != self.dataset.fingerprint or card.training.config != self._config_json:
            return None
        return TrainResult(name, self.out_dir / name, card.metrics, card.training.epochs_run, 0.0)

    def _targets(self, split: str, tasks: list[Task]) -> Targets:
        """Each task's (targets, known rows) tensors for the records of ``split``."""
        out = {}
        for task in tasks:
            key = (split, task.name)
            if key not in self._targets_cache:
                y, known = task.encode(self.dataset.targets(self.splits[split], task.name))
                self._targets_cache[key] = (torch.from_numpy(y), torch.from_numpy(known))
            out[task.name] = self._targets_cache[key]
        return out

    def _model(self, fusion_name: str, encoders: dict[str, Encoder], tasks: list[Task]) -> MultimodalClassifier:
        """A freshly initialised (seeded) model of ``fusion_name`` over ``encoders`` predicting ``tasks``."""
        torch.manual_seed(self.config.seed)
        fusion = build_fusion(
            fusion_name,
            in_dims={m: e.out_dim for m, e in encoders.items()},
            num_classes=sum(len(t.classes) for t in tasks),
            hidden=self.config.hidden,
            dropout=self.config.dropout,
        )
        return MultimodalClassifier(encoders, fusion, list(tasks[0].classes), tasks).to(self.device)

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

    # ------------------------------------------------------------------ stage 1: encoders
    def _prepare_encoders(self, modalities: list[str], embed_early: bool = False) -> None:
        """Build every encoder of ``modalities``: built-in ones are trained here (or, with
        ``resume``, loaded from their complete baseline checkpoint), pretrained ones loaded
        frozen. Afterwards every encoder is frozen for the fusion stage.

        With ``embed_early`` (fusions follow) and an embedding store, an encoder trained side by
        side with others has its splits embedded into the store as soon as it is done, while the
        others still train (stage 2 then finds them cached), and a core the last trainings leave
        idle prepares the training rows stage 2 will embed with them (:mod:`core.train.ahead`)."""
        to_train: dict[str, Encoder] = {}
        for modality in modalities:
            if modality in self._encoders:
                continue
            choice = self.config.encoders.get(modality, "builtin")
            corpus = [r.text for r in self.splits["train"] if r.text] if modality == "text" else None
            torch.manual_seed(self.config.seed)
            encoder = encoder_from_choice(modality, choice, corpus=corpus).to(self.device)
            if encoder.trainable:
                name = f"{modality}{BASELINE_SUFFIX}"
                done = self._results.get(name) or (self._completed(name) if self.resume else None)
                if done is None:
                    to_train[modality] = encoder
                    continue
                encoder = load_checkpoint(done.path, device=self.device).model.encoders[modality]
                self._results[name] = done
            self._freeze(modality, encoder)
        # Longest first: audio spectrograms cost the most, texts the least.
        order = sorted(to_train, key=lambda m: {"audio": 0, "image": 1}.get(m, 2))
        early = embed_early and self.cache is not None
        ahead = self._ahead.steps([(m, to_train[m], self.splits["train"]) for m in order], self.dataset.limits)
        trained = self._train_all(
            {f"{m}{BASELINE_SUFFIX}": (lambda m=m: self._train_encoder(m, to_train[m])) for m in order},
            on_result=self._embed_trained if early else None,
            background=ahead if early else None,
        )
        for modality in order:
            result = trained[f"{modality}{BASELINE_SUFFIX}"]
            encoder = to_train[modality]
            if self._side_by_side:  # trained in another process: its weights are in the checkpoint it saved
                encoder = load_checkpoint(result.path, device=self.device).model.encoders[modality]
            self._freeze(modality, encoder)

    def _freeze(self, modality: str, encoder: Encoder) -> None:
        encoder.eval()
        encoder.requires_grad_(False)
        self._encoders[modality] = encoder

    def _embed_trained(self, name: str, result: TrainResult) -> None:
        """Stage 2's embeddings of the modality of the encoder baseline ``name``, into the store."""
        modality = name[: -len(BASELINE_SUFFIX)]
        encoder = load_checkpoint(result.path, device=self.device).model.encoders[modality].eval()
        model = self._model("early", {modality: encoder}, self.tasks)
        for records in self.splits.values():
            embed_records(model, records, cache=self.cache, limits=self.dataset.limits, prepared=self._ahead.inputs)
        self._ahead.drop(modality)

    def _train_all(
        self,
        trainings: dict[str, Any],
        on_result: Callable[[str, TrainResult], None] | None = None,
        background: Iterator[Any] | None = None,
    ) -> dict[str, TrainResult]:
        """Run trainings (name -> zero-argument function returning its TrainResult): side by side in
        single-threaded processes on a CPU (:mod:`core.train.side_by_side`), else one after another.
        ``on_result``, ``background``: see :func:`~core.train.side_by_side.run_side_by_side`."""
        if not trainings:
            return {}
        self._side_by_side = can_run_side_by_side(self.device, self.ctx.world)
        if not self._side_by_side:
            return {name: train() for name, train in trainings.items()}

        def in_child(train):
            def task(emit):
                self.callback = emit if self.callback is not None else None
                self._data_workers = 0  # the other slots keep the cores busy
                return train()

            return task

        results = run_side_by_side(
            {n: in_child(t) for n, t in trainings.items()}, self.callback, on_result=on_result, background=background
        )
        self._results.update(results)
        return results

    def _unimodal_model(self, modality: str, encoder: Encoder) -> MultimodalClassifier:
        return self._model("early", {modality: encoder}, self.tasks)

    def _train_encoder(self, modality: str, encoder: Encoder) -> TrainResult:
        """The encoder and a unimodal head, end to end; saved as the ``<modality>-only`` baseline."""
        start = time.perf_counter()
        name = f"{modality}{BASELINE_SUFFIX}"
        self._emit(event="stage", stage=f"training the {modality} encoder")
        model = self._unimodal_model(modality, encoder)
        sets = {}
        transforms = self.config.augment.get(modality, ())
        for split in ("train", "val"):
            records = self.splits[split]
            inputs = (
                AugmentedInputs([load_modality(r, modality, self.dataset.limits) for r in records], encoder, transforms, self.config.seed)
                if split == "train" and transforms
                else prepared_inputs(records, encoder, modality, self.dataset.limits, self._data_workers)
            )
            sets[split] = TrainingSet(
                inputs={modality: inputs},
                embeddings={},
                present=_present_matrix(records, [modality]),
                targets=self._targets(split, self.tasks),
            )
        history, best_epoch = self._fit(
            name, model, list(model.parameters()), sets, self.config.encoder_epochs, self.config.encoder_lr, 0.0
        )
        return self._finish(name, "unimodal", model, history, best_epoch, time.perf_counter() - start)

    def _train_frozen_baseline(self, modality: str) -> None:
        """A frozen pretrained encoder's baseline: a head trained on its cached embeddings."""
        start = time.perf_counter()
        name = f"{modality}{BASELINE_SUFFIX}"
        model = self._unimodal_model(modality, self._encoders[modality])
        history, best_epoch = self._fit_head(model, self._embed_splits(model), name, modality_dropout=0.0)
        self._finish(name, "unimodal", model, history, best_epoch, time.perf_counter() - start)

    # ------------------------------------------------------------------ stage 2: fusion
    def _probe_model(self) -> MultimodalClassifier:
        """A model over every encoder, only used to embed the splits once for all fusions."""
        return self._model("early", {m: self._encoders[m] for m in self.modalities}, self.tasks)

    def _embed_splits(self, model: MultimodalClassifier) -> dict[str, EmbeddedRecords]:
        self._emit(event="stage", stage="computing embeddings")
        bar = tqdm(desc="embeddings", unit="sample", disable=not (self.show_progress and self.ctx.is_main), leave=False)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        out = {
            split: embed_records(
                model,
                records,
                cache=self.cache,
                limits=self.dataset.limits,
                progress=progress,
                shard=self.ctx.enabled,  # under torchrun each rank encodes its shards of the rows
                prepared=self._ahead.inputs,
            )
            for split, records in self.splits.items()
        }
        for modality in model.modalities:  # a frozen baseline's embedding leaves the others' inputs
            self._ahead.drop(modality)
        bar.close()
        return out

    def _fit_head(
        self, model: MultimodalClassifier, embedded: dict[str, EmbeddedRecords], name: str, modality_dropout: float
    ) -> tuple[list[dict[str, float]], int]:
        sets = {
            split: TrainingSet({}, embedded[split].embeddings, embedded[split].present, self._targets(split, model.tasks))
            for split in ("train", "val")
        }
        params = [p for n, p in model.named_parameters() if not n.startswith("encoders.")]
        return self._fit(name, model, params, sets, self.config.fusion_epochs, self.config.fusion_lr, modality_dropout)

    def _fit(
        self,
        name: str,
        model: MultimodalClassifier,
        params: list[nn.Parameter],
        sets: dict[str, TrainingSet],
        epochs: int,
        lr: float,
        modality_dropout: float,
    ) -> tuple[list[dict[str, float]], int]:
        """:func:`core.train.loop.fit` with this run's device, progress, callback and resumable state."""
        names = {t.name for t in model.tasks}
        weights = {k: v for k, v in self.config.task_weights.items() if k in names}
        class_weights = (
            inverse_frequency_weights(model.tasks, self._targets("train", model.tasks))
            if self.config.class_weights == "auto"
            else None
        )
        self._loss = MultiTaskLoss(model.tasks, self.config.task_weighting, weights, class_weights)
        return fit(
            model,
            params,
            sets["train"],
            sets["val"],
            loss=self._loss,
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

    def _train_fusion(self, name: str, embedded: dict[str, EmbeddedRecords]) -> TrainResult:
        start = time.perf_counter()
        fusion, only = split_model_name(name)
        self._emit(event="stage", stage=f"training {fusion} fusion" + (f" on the {only} task alone" if only else ""))
        tasks = [t for t in self.tasks if t.name == only] if only else self.tasks
        model = self._model(fusion, {m: self._encoders[m] for m in self.modalities}, tasks)
        history, best_epoch = self._fit_head(model, embedded, name, self.config.modality_dropout)
        return self._finish(name, "fusion", model, history, best_epoch, time.perf_counter() - start, embedded)

    # ------------------------------------------------------------------ saving
    def _finish(
        self,
        name: str,
        kind: str,
        model: MultimodalClassifier,
        history: list[dict[str, float]],
        best_epoch: int,
        seconds: float,
        embedded: dict[str, EmbeddedRecords] | None = None,
    ) -> TrainResult:
        embedded = embedded if embedded is not None and set(model.modalities) == set(self.modalities) else None
        outputs = {}
        for split in ("val", "test"):
            if self.splits[split]:
                data = embedded[split] if embedded is not None else embed_records(
                    model, self.splits[split], cache=self.cache, limits=self.dataset.limits, shard=self.ctx.enabled
                )
                outputs[split] = {t.name: classify_proba(model, data.embeddings, data.present, task=t) for t in model.tasks}
        thresholds = {
            t.name: tune_thresholds(*self._known(outputs["val"][t.name], "val", t), t.classes)
            for t in model.tasks
            if t.multi_label
        }
        task_metrics = {
            t.name: {split: self._headline(proba[t.name], split, t, thresholds) for split, proba in outputs.items()}
            for t in model.tasks
        }
        metrics = task_metrics[model.tasks[0].name]
        path = self.out_dir / name
        if self.ctx.is_main:
            save_checkpoint(
                model,
                path,
                name=name,
                kind=kind,
                dataset=DatasetInfo(
                    path=str(self.dataset.root),
                    fingerprint=self.dataset.fingerprint,
                    splits={s: len(r) for s, r in self.splits.items()},
                ),
                training=TrainingInfo(
                    config=self._config_json,
                    device=describe_device(self.device),
                    world_size=self.ctx.world,
                    epochs_run=len(history),
                    best_epoch=best_epoch,
                    seconds=round(seconds, 3),
                    encoders_frozen_in_fusion=kind == "fusion",
                    history=history,
                ),
                metrics=metrics,
                preprocessing={"sample_rate": SAMPLE_RATE},
                task_metrics=task_metrics if len(model.tasks) > 1 else None,
                thresholds=thresholds,
                task_weights=self._loss.weights() if len(model.tasks) > 1 else None,
            )
            clear_fit_state(self._state_dir(name))
        distributed.barrier()
        self._emit(event="saved", model=name, path=str(path), metrics=metrics)
        self._results[name] = TrainResult(name, path, metrics, len(history), seconds)
        return self._results[name]


    def _known(self, proba: np.ndarray, split: str, task: Task) -> tuple[np.ndarray, np.ndarray]:
        """``(targets, probabilities)`` of the rows of ``split`` labelled for ``task``."""
        y, known = self._targets(split, [task])[task.name]
        return y.numpy()[known.numpy()], proba[known.numpy()]

    def _headline(self, proba: np.ndarray, split: str, task: Task, thresholds: dict) -> dict[str, float]:
        """A task's metrics on a split for the card (multi-label: at its tuned thresholds)."""
        y, p = self._known(proba, split, task)
        if not task.multi_label:
            return headline_metrics(y, p)
        values = multilabel_metrics(y, p, task.classes, thresholds.get(task.name, {})).values
        keys = ("f1_micro", "f1_macro", "exact_match", "hamming_loss", "average_precision_macro")
        return {"n": int(len(y)), **{k: values[k] for k in keys if values.get(k) is not None}}


def _present_matrix(records: list[Record], modalities: list[str]) -> torch.Tensor:
    return torch.tensor([[getattr(r, m) is not None for m in modalities] for r in records], dtype=torch.bool).reshape(
        len(records), len(modalities)
    )
