"""How a checkpoint uses its modalities over a whole split: exact Shapley values and interactions, and EMAP.

- **Coalitions.** For every row, the true class's probability with each of the 2^M subsets
  of the checkpoint's modalities kept (the others replaced by the learned
  missing-modality embedding): one batched fusion-head call per chunk of rows, on cached
  embeddings. From these values follow, exactly, the row's modality Shapley values, its
  pairwise Shapley interaction indices and its Harsanyi dividends (the Möbius transform).
- **EMAP** (Hessel and Lee, 2020, "Does my multimodal model learn cross-modal
  interactions?"): the model's logits are projected onto additive functions of the
  modalities, ``f(x) ~ sum_m E[f | x_m] - (M - 1) E[f]``, with each expectation taken over
  reference rows whose other modalities replace the row's own. If the projection is as
  accurate as the model, the model gains nothing from cross-modal interactions.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from core.embeddings import EmbeddedRecords
from core.evaluate.results import Emap, EvaluationOptions, ModalityUsage, SampleResult
from core.explain.modality_shapley import coalition_outputs, shapley_from_values
from core.inference import classify_proba
from core.model import MultimodalClassifier

COALITION_CHUNK = 512
"""Rows whose 2^M coalitions go through one fusion-head call."""


def coalition_values(model: MultimodalClassifier, data: EmbeddedRecords) -> np.ndarray:
    """``[N, 2^M]`` probability of each row's true class for every coalition of the model's modalities.

    Rows with an unknown label (``-1``) use their predicted class.
    """
    device = model.device
    out = []
    for start in range(0, len(data), COALITION_CHUNK):
        chunk = slice(start, start + COALITION_CHUNK)
        embeddings = {m: e[chunk].to(device) for m, e in data.embeddings.items()}
        probabilities, _ = coalition_outputs(model, embeddings, data.present[chunk], model.modalities)
        labels = data.labels[chunk].numpy()
        target = np.where(labels >= 0, labels, probabilities[:, -1, :].argmax(axis=1))
        out.append(probabilities[np.arange(len(target)), :, target])
    return np.concatenate(out) if out else np.zeros((0, 2 ** len(model.modalities)))


def harsanyi_dividends(values: np.ndarray) -> np.ndarray:
    """Möbius transform of coalition values ``[..., 2^M]``: ``a(S) = sum_{T <= S} (-1)^|S-T| v(T)``.

    ``v(S) = sum_{T <= S} a(T)``; ``a`` of a single modality is its effect alone, of two or
    more modalities what they add only together (their pure interaction).
    """
    dividends = np.array(values, dtype=np.float64, copy=True)
    n_players = int(round(np.log2(dividends.shape[-1])))
    for player in range(n_players):
        bit = 1 << player
        for coalition in range(dividends.shape[-1]):
            if coalition & bit:
                dividends[..., coalition] -= dividends[..., coalition ^ bit]
    return dividends


def _pair_names(modalities: Sequence[str]) -> list[tuple[int, int, str]]:
    return [(i, j, f"{a}×{b}") for (i, a), (j, b) in itertools.combinations(enumerate(modalities), 2)]


def modality_usage(samples: Sequence[SampleResult], modalities: Sequence[str]) -> ModalityUsage:
    """Mean (and mean absolute) modality Shapley values and mean absolute pairwise interactions
    of the rows in ``samples`` (those without coalition values are skipped)."""
    values = np.array([s.coalitions for s in samples if s.coalitions is not None], dtype=float)
    if not len(values):
        zero = {m: 0.0 for m in modalities}
        return ModalityUsage(0, zero, dict(zero), {name: 0.0 for _, _, name in _pair_names(modalities)})
    phi, interactions = shapley_from_values(values)
    return ModalityUsage(
        rows=len(values),
        mean_shapley={m: float(phi[:, i].mean()) for i, m in enumerate(modalities)},
        mean_abs_shapley={m: float(np.abs(phi[:, i]).mean()) for i, m in enumerate(modalities)},
        mean_abs_interaction={
            name: float(np.abs(interactions[:, i, j]).mean()) for i, j, name in _pair_names(modalities)
        },
    )


def emap_predictions(
    model: MultimodalClassifier, data: EmbeddedRecords, options: EvaluationOptions
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, predictions)``: class indices of the EMAP projection for a seeded subsample of rows.

    For row ``i`` and modality ``m``, ``E[f | x_m]`` averages the logits over the reference
    rows ``r`` of ``f(x_{i,m}, x_{r,-m})`` (modality ``m``, and whether it is present, from
    row ``i``; every other modality from row ``r``); ``E[f]`` averages ``f`` over reference
    combinations whose every modality comes from a different reference row.
    """
    rng = np.random.default_rng(options.seed)
    n, modalities = len(data), model.modalities
    rows = np.sort(rng.choice(n, size=min(n, options.emap_rows), replace=False))
    reference = rng.choice(n, size=min(n, options.emap_reference), replace=False)
    k = len(reference)
    summed = np.zeros((len(rows), len(model.classes)))
    for column, modality in enumerate(modalities):
        for start in range(0, len(rows), max(1, 8192 // k)):
            query = rows[start : start + max(1, 8192 // k)]
            own = torch.from_numpy(np.repeat(query, k))  # each query row against every reference row
            other = torch.from_numpy(np.tile(reference, len(query)))
            embeddings = {m: data.embeddings[m][own if m == modality else other] for m in modalities}
            present = data.present[other].clone()
            present[:, column] = data.present[own, column]
            logits = classify_proba(model, embeddings, present, logits=True).reshape(len(query), k, -1)
            summed[start : start + len(query)] += logits.mean(axis=1)
    shuffled = [reference[rng.permutation(k)] for _ in modalities]
    mixed = {m: data.embeddings[m][torch.from_numpy(shuffled[c])] for c, m in enumerate(modalities)}
    mixed_present = torch.stack([data.present[torch.from_numpy(shuffled[c]), c] for c in range(len(modalities))], 1)
    mean_logits = classify_proba(model, mixed, mixed_present, logits=True).mean(axis=0)
    projection = summed - (len(modalities) - 1) * mean_logits
    return rows, projection.argmax(axis=1)


def emap_summary(samples: Sequence[SampleResult], reference_rows: int) -> Emap | None:
    """Accuracy of the model and of its EMAP projection on the rows that have one."""
    scored = [s for s in samples if s.emap_prediction is not None]
    if not scored:
        return None
    accuracy = float(np.mean([s.correct for s in scored]))
    emap_accuracy = float(np.mean([s.emap_prediction == s.label for s in scored]))
    gap = accuracy - emap_accuracy
    return Emap(
        rows=len(scored),
        reference_rows=reference_rows,
        accuracy=accuracy,
        emap_accuracy=emap_accuracy,
        gap=gap,
        interaction_share=gap / accuracy if accuracy > 0 else 0.0,
    )

