"""The batched perturbation engine under every explanation method.

One engine explains one sample with one (shared, read-only, eval-mode) model:

- the unperturbed embeddings of every modality are computed once and reused;
- a perturbation of one modality re-runs only that modality's encoder, then ``classify``;
- for joint masks only modalities whose segments changed are re-encoded, and identical
  perturbed inputs within a call are encoded once;
- perturbations run in large batches under ``torch.inference_mode()`` (autocast on
  CUDA); a batch that runs out of memory is halved and retried.

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

from core.device import autocast, describe_device, input_bytes, is_out_of_memory, memory_bounded_batch, move_to
from core.explain.params import ExplainParams
from core.explain.result import ExplanationCancelled
from core.explain.segmentation import SEGMENTATIONS, Segmentation, composed_prepare, content_hash
from core.model import MultimodalClassifier
from core.sample import DecodedSample

ProgressCallback = Callable[[float], None]
CancelFlag = threading.Event | Callable[[], bool]

CLASSIFY_BATCH = 4096
"""Rows per ``classify`` call: fusion + head on embeddings is cheap, so only memory bounds it."""


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
            :class:`ExplanationCancelled`.

    Attributes:
        modalities: the model's modalities present in the sample (sorted).
        present: ``BoolTensor[1, M]`` the sample's presence row, in model order.
        probabilities: ``[C]`` probabilities of the unperturbed sample.
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
    ):
        self.model = model
        self.sample = sample
        self.params = params
        self.device = model.device
        self.progress = progress
        self.cancel = cancel
        self.batch_size = params.batch_size
        self.modalities = [m for m in model.modalities if sample.get(m) is not None]
        if not self.modalities:
            raise ValueError(f"The sample has none of the model's modalities ({', '.join(model.modalities)}).")
        self.evaluations = 0
        self.encoded = 0
        self.expected = 0
        self._started = time.perf_counter()
        batch = model.prepare([sample])
        self.present = batch.present
        per_sample = max((input_bytes(v) for v in batch.inputs.values()), default=0)
        self.batch_size = memory_bounded_batch(self.device, per_sample, self.batch_size)
        with torch.inference_mode(), autocast(self.device):
            self.base_embeddings = {m: e.float() for m, e in model.embed(batch).items()}
        self.probabilities = self.classify_embeddings({}, 1)[0]

    # ------------------------------------------------------------------ bookkeeping
    def expect(self, evaluations: int) -> None:
        """Announce how many more evaluations the current method will ask for (for progress)."""
        self.expected = self.evaluations + int(evaluations)

    def check_cancel(self) -> None:
        if is_cancelled(self.cancel):
            raise ExplanationCancelled("explanation cancelled")

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
            "batch_size": self.batch_size,
        }

    # ------------------------------------------------------------------ evaluation
    def classify_embeddings(self, replaced: dict[str, torch.Tensor], n_rows: int) -> np.ndarray:
        """Probabilities ``[N, C]`` with ``replaced[m]`` (``[N, d_m]``) swapped in, others unperturbed."""
        chunks = []
        with torch.inference_mode(), autocast(self.device):
            for start in range(0, n_rows, CLASSIFY_BATCH):
                size = min(CLASSIFY_BATCH, n_rows - start)
                embeddings = {
                    m: replaced[m][start : start + size] if m in replaced else base.expand(size, -1)
                    for m, base in self.base_embeddings.items()
                }
                logits = self.model.classify(embeddings, self.present.expand(size, -1))
                chunks.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks).astype(np.float64)

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
        """Embeddings ``[len(values), d]`` in batches of ``self.batch_size``, halved on out-of-memory."""
        encoder = self.model.encoders[modality]
        out: list[torch.Tensor] = []
        done = 0
        while done < len(values):
            self.check_cancel()
            size = min(self.batch_size, len(values) - done)
            try:
                inputs = encoder.collate([prepare(v) for v in values[done : done + size]])
                with torch.inference_mode(), autocast(self.device):
                    out.append(encoder(move_to(inputs, self.device)).float())
            except Exception as err:
                if not is_out_of_memory(err) or size == 1:
                    raise
                self.batch_size = max(1, size // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            done += size
            self.encoded += size
            self._report(self.evaluations + rows * done / len(values))
        return torch.cat(out) if out else torch.zeros(0, encoder.out_dim, device=self.device)


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
