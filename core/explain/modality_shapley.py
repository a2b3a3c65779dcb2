"""Exact modality-level Shapley values and pairwise interaction indices.

The players are the modalities present in a sample; the value of a coalition S is
the target-class probability (or logit) of ``model.classify`` on the sample's
embeddings with only S marked present, every other modality replaced by the
learned missing-modality embedding. Embeddings are computed once; all 2^M
coalitions go through ONE batched ``classify`` call.
"""

from __future__ import annotations

import time
from math import factorial

import numpy as np
import torch

from core.device import autocast
from core.explain.base import Explainer
from core.explain.engine import PerturbationEngine
from core.explain.result import Explanation
from core.inference import task_output
from core.model import MultimodalClassifier


def coalition_matrix(n_players: int) -> np.ndarray:
    """``bool [2^n, n]``: row c has player i when bit i of c is set (row 0 empty, last row full)."""
    codes = np.arange(2**n_players)
    return (codes[:, None] >> np.arange(n_players)[None, :]) & 1 == 1


def shapley_from_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact Shapley values and Shapley interaction indices from coalition values.

    Args:
        values: ``[..., 2^n]`` value of each coalition, indexed as in :func:`coalition_matrix`.

    Returns:
        ``phi [..., n]`` with ``phi.sum(-1) == values[..., -1] - values[..., 0]`` (efficiency), and
        ``interactions [..., n, n]``, symmetric with a zero diagonal:
        ``I_ij = sum_{S without i,j} |S|! (n-|S|-2)! / (n-1)! * (v(S+ij) - v(S+i) - v(S+j) + v(S))``.
    """
    values = np.asarray(values, dtype=np.float64)
    n = int(round(np.log2(values.shape[-1])))
    phi = np.zeros(values.shape[:-1] + (n,))
    interactions = np.zeros(values.shape[:-1] + (n, n))
    for coalition in range(2**n):
        size = bin(coalition).count("1")
        for i in range(n):
            if coalition >> i & 1:
                continue
            weight = factorial(size) * factorial(n - size - 1) / factorial(n)
            phi[..., i] += weight * (values[..., coalition | 1 << i] - values[..., coalition])
            for j in range(i + 1, n):
                if coalition >> j & 1:
                    continue
                pair_weight = factorial(size) * factorial(n - size - 2) / factorial(n - 1)
                both = coalition | 1 << i | 1 << j
                delta = values[..., both] - values[..., coalition | 1 << i] - values[..., coalition | 1 << j]
                interactions[..., i, j] += pair_weight * (delta + values[..., coalition])
    interactions = interactions + np.swapaxes(interactions, -1, -2)
    return phi, interactions


def coalition_outputs(
    model: MultimodalClassifier,
    embeddings: dict[str, torch.Tensor],
    present: torch.Tensor,
    players: list[str],
    task: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One task's probabilities and logits (default: the primary task) for every coalition of
    ``players``, for B samples, in one ``classify``.

    Args:
        embeddings: ``dict[str, Tensor[B, d_m]]`` on the model's device.
        present: ``BoolTensor[B, M]`` the samples' own presence (a player absent from a
            sample stays absent in every coalition).
        players: the modalities switched on and off.

    Returns:
        ``probabilities [B, 2^n, C]`` and ``logits [B, 2^n, C]``.
    """
    batch = present.shape[0]
    coalitions = torch.from_numpy(coalition_matrix(len(players)))
    n_coalitions = coalitions.shape[0]
    rows = present.repeat_interleave(n_coalitions, dim=0).clone()
    for k, player in enumerate(players):
        column = model.modalities.index(player)
        rows[:, column] &= coalitions[:, k].repeat(batch)
    expanded = {m: e.repeat_interleave(n_coalitions, dim=0) for m, e in embeddings.items()}
    with torch.inference_mode(), autocast(model.device):
        outputs = model.classify(expanded, rows).float()
    logits = task_output(model, outputs, task, logits=True)
    probabilities = task_output(model, outputs, task, logits=False)
    shape = (batch, n_coalitions, -1)
    return probabilities.reshape(shape).cpu().numpy(), logits.reshape(shape).cpu().numpy()


class ModalityShapley(Explainer):
    """Exact modality Shapley values and interaction indices (2^M coalitions, one ``classify`` call)."""

    name = "modality"
    label = "Modality Shapley"
    segment_scores = False
    needs_modalities = False

    def explain(self, engine: PerturbationEngine, target: int, modalities: list[str]) -> Explanation:
        return modality_shapley(engine, target, include_logit=engine.params.include_logit)


def modality_shapley(engine: PerturbationEngine, target: int, include_logit: bool = False) -> Explanation:
    """Modality Shapley values of ``engine``'s sample for class ``target``.

    Returns an :class:`Explanation` whose ``modality_totals`` are the Shapley values of the
    target probability and whose ``interactions`` is the ``[M, M]`` interaction matrix;
    ``metadata["coalitions"]`` lists every coalition's probability.
    """
    started = time.perf_counter()
    players = engine.modalities
    probabilities, logits = coalition_outputs(
        engine.model, engine.base_embeddings, engine.present, players, engine.task.name
    )
    values = probabilities[0, :, target]
    phi, interactions = shapley_from_values(values)
    coalitions = coalition_matrix(len(players))
    metadata = {
        "method": "modality",
        "target": target,
        "value": "probability",
        "parameters": engine.params.to_dict(),
        "empty_value": float(values[0]),
        "full_value": float(values[-1]),
        "coalitions": {
            "+".join(p for p, on in zip(players, row, strict=True) if on) or "none": float(v)
            for row, v in zip(coalitions, values, strict=False)
        },
        "evaluations": len(values),
        "runtime_s": time.perf_counter() - started,
        "device": engine.metadata()["device"],
    }
    if include_logit:
        logit_phi, logit_interactions = shapley_from_values(logits[0, :, target])
        metadata["logit_totals"] = dict(zip(players, logit_phi.tolist(), strict=True))
        metadata["logit_interactions"] = logit_interactions.tolist()
    return Explanation(
        method="modality",
        target=target,
        target_name=engine.task.classes[target],
        classes=list(engine.task.classes),
        task=engine.task.name,
        probabilities=engine.probabilities,
        modality_totals=dict(zip(players, phi.tolist(), strict=True)),
        interactions=interactions,
        interaction_modalities=list(players),
        metadata=metadata,
    )
