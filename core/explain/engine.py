"""The batched perturbation engine under every explanation method.

One engine explains one sample with one (shared, read-only, eval-mode) model:

- the unperturbed embeddings of every modality are computed once and reused;
- a perturbation of one modality re-runs only that modality's encoder, then ``classify``;
- for joint masks only modalities whose segments changed are re-encoded, and identical
  perturbed inputs within a call are encoded once;
- perturbations run in large batches through :mod:`core.inference` (autocast on CUDA;
  a batch that runs out of memory is halved, and stays halved for the rest of the sample).

The engine never registers hooks on, moves, or changes the mode of the model, so
several threads may explain with the same model at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from core.device import autocast, describe_device, input_bytes, memory_bounded_batch
from core.errors import Cancelled, ExplanationError
from core.explain.params import ExplainParams
from core.explain.result import Explanation
from core.explain.segmentation import (
    SEGMENTATIONS,
    AudioSegmentation,
    ImageSegmentation,
    Segmentation,
    TextSegmentation,
    composed_prepare,
)
from core.hashing import content_hash
from core.inference import BatchSize, classify_proba, encode
from core.model import MultimodalClassifier
from core.sample import DecodedSample

ProgressCallback = Callable[[float], None]
CancelFlag = threading.Event | Callable[[], bool]


def is_cancelled(cancel: CancelFlag | None) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class PerturbationEngine:
    """Evaluates perturbed versions of one sample in batches.

    Args:
        model: the classifier (in eval mode; never modified).
        sample: the decoded sample being explained.
        params: segmentation and batching settings.
        progress: called with the fraction of ``expected`` evaluations done.
        cancel: an ``Event`` or a callable; when set, the next batch raises
            :class:`~core.errors.Cancelled`.
        task: the task whose output is explained (default: the model's primary task).

    Attributes:
        modalities: the model's modalities present in the sample (sorted).
        present: ``BoolTensor[1, M]`` the sample's presence row, in model order.
        probabilities: ``[C]`` the task's probabilities for the unperturbed sample.
        evaluations: perturbed rows evaluated so far (before deduplication).
        encoded: perturbed inputs actually run through an encoder.
    """

    def __init__(
        self,
        model: MultimodalClassifier,
        sample: DecodedSample,
        params: ExplainParams,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
        task: str | None = None,
    ):
        self.model = model
        try:
            self.task = model.task(task)
        except KeyError:
            raise ExplanationError(
                f"The model does not predict the task {task!r} (it predicts {', '.join(t.name for t in model.tasks)})."
            ) from None
        self.sample = sample
        self.params = params
        self.device = model.device
        self.progress = progress
        self.cancel = cancel
        self.modalities = [m for m in model.modalities if sample.get(m) is not None]
        if not self.modalities:
            raise ExplanationError(f"The sample has none of the model's modalities ({', '.join(model.modalities)}).")
        self.evaluations = 0
        self.encoded = 0
        self.expected = 0
        self._started = time.perf_counter()
        batch = model.prepare([sample])
        self.present = batch.present
        per_sample = max((input_bytes(v) for v in batch.inputs.values()), default=0)
        self.batch = BatchSize(memory_bounded_batch(self.device, per_sample, params.batch_size))
        with torch.inference_mode(), autocast(self.device):
            self.base_embeddings = {m: e.float() for m, e in model.embed(batch).items()}
        self.probabilities = self.classify_embeddings({}, 1)[0]

    # ------------------------------------------------------------------ bookkeeping
    def expect(self, evaluations: int) -> None:
        """Announce how many more evaluations the current method will ask for (for progress)."""
        self.expected = self.evaluations + int(evaluations)

    def check_cancel(self) -> None:
        if is_cancelled(self.cancel):
            raise Cancelled("The explanation was cancelled.")

    def _report(self, evaluations: float) -> None:
        if self.progress is not None and self.expected > 0:
            self.progress(min(1.0, evaluations / self.expected))

    def segmentation(self, modality: str) -> Segmentation:
        """The (cached) segmentation of the sample's ``modality``."""
        return SEGMENTATIONS.get(modality, self.sample.get(modality), self.model.encoders[modality], self.params)

    def metadata(self) -> dict[str, Any]:
        return {
            "runtime_s": time.perf_counter() - self._started,
            "evaluations": self.evaluations,
            "encoded": self.encoded,
            "device": describe_device(self.device),
            "batch_size": self.batch.value,
        }

    # ------------------------------------------------------------------ evaluation
    def classify_embeddings(self, replaced: dict[str, torch.Tensor], n_rows: int) -> np.ndarray:
        """Probabilities ``[N, C]`` with ``replaced[m]`` (``[N, d_m]``) swapped in, others unperturbed."""
        embeddings = {m: replaced.get(m, base.expand(n_rows, -1)) for m, base in self.base_embeddings.items()}
        return classify_proba(self.model, embeddings, self.present.expand(n_rows, -1), task=self.task).astype(np.float64)

    def evaluate_values(self, modality: str, values: Sequence[Any]) -> np.ndarray:
        """Probabilities ``[N, C]`` of the sample with ``modality`` replaced by each of ``values``.

        ``values`` are decoded inputs (images, texts, waveforms); identical ones are encoded once.
        """
        position: dict[str, int] = {}
        distinct: list[Any] = []
        inverse_index: list[int] = []
        for value in values:
            key = content_hash(value)
            if key not in position:
                position[key] = len(distinct)
                distinct.append(value)
            inverse_index.append(position[key])
        embeddings = self._encode(modality, distinct, prepare=self.model.encoders[modality].prepare, rows=len(values))
        inverse = torch.tensor(inverse_index, device=embeddings.device)
        return self._finish({modality: embeddings[inverse]}, len(values))

    def evaluate_masks(self, masks: dict[str, np.ndarray]) -> np.ndarray:
        """Probabilities ``[N, C]`` for segment masks ``masks[m]`` (``[N, n_segments_m]``, 1 = keep).

        Modalities not in ``masks`` keep their unperturbed embeddings; rows that keep every
        segment reuse it too; identical rows are encoded once.
        """
        n_rows = len(next(iter(masks.values())))
        replaced: dict[str, torch.Tensor] = {}
        for modality, mask in masks.items():
            mask = np.asarray(mask, dtype=bool)
            if mask.all():
                continue
            unique_rows, inverse = np.unique(mask, axis=0, return_inverse=True)
            changed = ~unique_rows.all(axis=1)
            segmentation = self.segmentation(modality)
            base = self.base_embeddings[modality][0]
            table = base.unsqueeze(0).repeat(len(unique_rows), 1)
            if changed.any():
                prepare = composed_prepare(self.model.encoders[modality], segmentation)
                encoded = self._encode(
                    modality, _LazyComposition(segmentation, unique_rows[changed]), prepare=prepare, rows=n_rows
                )
                table[torch.from_numpy(np.flatnonzero(changed)).to(table.device)] = encoded.to(table.dtype)
            replaced[modality] = table[torch.from_numpy(inverse.reshape(-1)).to(table.device)]
        return self._finish(replaced, n_rows)

    def _finish(self, replaced: dict[str, torch.Tensor], n_rows: int) -> np.ndarray:
        probabilities = self.classify_embeddings(replaced, n_rows)
        self.evaluations += n_rows
        self._report(self.evaluations)
        return probabilities

    def _encode(
        self, modality: str, values: Sequence[Any], *, prepare: Callable[[Any], Any], rows: int
    ) -> torch.Tensor:
        """Embeddings ``[len(values), d]`` on the device, in batches that shrink on out-of-memory."""
        embeddings = encode(
            self.model.encoders[modality],
            values,
            self.device,
            batch=self.batch,
            prepare=prepare,
            before_batch=self.check_cancel,
            after_batch=lambda done: self._report(self.evaluations + rows * done / len(values)),
        )
        self.encoded += len(values)
        return embeddings

    # ------------------------------------------------------------------ results
    def attribution(self, method: str, target: int, segment_scores: dict[str, np.ndarray]) -> Explanation:
        """An :class:`Explanation` whose per-modality maps are spread from per-segment scores."""
        explanation = Explanation(
            method=method,
            target=target,
            target_name=self.task.classes[target],
            classes=list(self.task.classes),
            task=self.task.name,
            probabilities=self.probabilities,
            modality_totals={m: float(np.sum(s)) for m, s in segment_scores.items()},
            segment_scores={m: np.asarray(s, dtype=np.float64) for m, s in segment_scores.items()},
            metadata={
                "method": method,
                "target": target,
                "parameters": self.params.to_dict(),
                "device": describe_device(self.device),
                "segments": {m: int(len(s)) for m, s in segment_scores.items()},
            },
        )
        for modality, scores in segment_scores.items():
            segmentation = self.segmentation(modality)
            if isinstance(segmentation, ImageSegmentation):
                explanation.image = segmentation.to_map(scores)
            elif isinstance(segmentation, TextSegmentation):
                explanation.tokens = segmentation.to_map(scores)
            elif isinstance(segmentation, AudioSegmentation):
                explanation.audio = segmentation.to_map(scores)
                explanation.audio_times = segmentation.times
                explanation.audio_freqs = segmentation.freqs
                explanation.audio_spectrogram = segmentation.spectrogram.astype(np.float64)
                explanation.metadata["audio_domain"] = segmentation.domain
        return explanation


class _LazyComposition(Sequence):
    """Perturbed inputs composed from mask rows only when a batch asks for them (bounded memory)."""

    def __init__(self, segmentation: Segmentation, masks: np.ndarray):
        self.segmentation = segmentation
        self.masks = masks

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.segmentation.compose(self.masks[index])
        return self.segmentation.compose(self.masks[index : index + 1])[0]
