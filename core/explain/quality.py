"""Quality checks of explanations: faithfulness curves, SHAP/LIME agreement, and the
demo check that modality Shapley gives corrupted or missing modalities less credit."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr

from core.data import Dataset
from core.embeddings import embed_records
from core.explain.engine import PerturbationEngine
from core.explain.modality_shapley import coalition_outputs, shapley_from_values
from core.explain.result import Explanation, FaithfulnessCurves
from core.model import MultimodalClassifier

BAD_STATES = ("corrupted", "missing")


def _curve_masks(order: np.ndarray, fractions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deletion masks (top-k removed) and insertion masks (only top-k kept), ``[K, D]`` each."""
    n_features = len(order)
    deletion = np.ones((len(fractions), n_features), dtype=bool)
    insertion = np.zeros((len(fractions), n_features), dtype=bool)
    for row, fraction in enumerate(fractions):
        top = order[: int(round(fraction * n_features))]
        deletion[row, top] = False
        insertion[row, top] = True
    return deletion, insertion


def faithfulness(engine: PerturbationEngine, explanation: Explanation) -> FaithfulnessCurves:
    """Deletion and insertion curves over the explanation's segments, ranked by score.

    Segments of all explained modalities are ranked together (highest score first); the
    curves track the target probability as the top fraction is removed (deletion) or is
    the only part kept (insertion). A seeded random order gives the reference areas.
    All ``4 * (faithfulness_steps + 1)`` perturbations go through one engine call.
    """
    modalities = list(explanation.segment_scores)
    scores = np.concatenate([explanation.segment_scores[m] for m in modalities])
    sizes = [len(explanation.segment_scores[m]) for m in modalities]
    fractions = np.linspace(0.0, 1.0, engine.params.faithfulness_steps + 1)
    ranked = np.argsort(-scores, kind="stable")
    shuffled = np.random.default_rng(engine.params.seed).permutation(len(scores))
    blocks = [*_curve_masks(ranked, fractions), *_curve_masks(shuffled, fractions)]
    joint = np.concatenate(blocks)
    bounds = np.cumsum([0, *sizes])
    masks = {m: joint[:, bounds[i] : bounds[i + 1]] for i, m in enumerate(modalities)}
    target_probability = engine.evaluate_masks(masks)[:, explanation.target].reshape(4, len(fractions))

    def area(curve: np.ndarray) -> float:
        return float(np.trapezoid(curve, fractions))

    deletion, insertion, random_deletion, random_insertion = target_probability
    return FaithfulnessCurves(
        fractions=fractions,
        deletion=deletion,
        insertion=insertion,
        deletion_auc=area(deletion),
        insertion_auc=area(insertion),
        random_deletion_auc=area(random_deletion),
        random_insertion_auc=area(random_insertion),
    )


def agreement(first: Explanation, second: Explanation) -> dict[str, float]:
    """Spearman rank correlation of two explanations' segment scores, per shared modality.

    Both must come from the same segmentation (same sample and settings); a modality with
    constant scores in either gets ``nan``.
    """
    out = {}
    for modality in sorted(set(first.segment_scores) & set(second.segment_scores)):
        a, b = first.segment_scores[modality], second.segment_scores[modality]
        if len(a) != len(b) or len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
            out[modality] = float("nan")
            continue
        out[modality] = float(spearmanr(a, b).statistic)
    return out


def corrupted_modality_credit(
    model: MultimodalClassifier,
    dataset: Dataset,
    split: str = "test",
    *,
    target: str = "label",
    batch_size: int = 256,
) -> dict[str, Any]:
    """How often modality Shapley gives a corrupted/missing modality less credit than a clean one.

    For every record of ``split`` with ``<modality>_state`` extras, every pair (bad modality,
    clean modality) among the model's modalities is one comparison; a missing modality is
    not a player, so its credit is 0. Credit is the Shapley value of the probability of the
    true label (``target="label"``) or of the predicted class (``target="predicted"``).

    Returns:
        ``{"rate", "comparisons", "by_state": {"corrupted": {"rate", "comparisons"}, "missing": ...},
        "records"}``.
    """
    records = [r for r in dataset.split(split) if any(f"{m}_state" in r.extras for m in model.modalities)]
    embedded = embed_records(model, records, batch_size=batch_size)
    wins = {state: 0 for state in BAD_STATES}
    counts = {state: 0 for state in BAD_STATES}
    device = model.device
    for start in range(0, len(records), batch_size):
        chunk = slice(start, start + batch_size)
        embeddings = {m: e[chunk].to(device) for m, e in embedded.embeddings.items()}
        probabilities, _ = coalition_outputs(model, embeddings, embedded.present[chunk], model.modalities)
        full = probabilities[:, -1, :]
        labels = embedded.labels[chunk].numpy()
        targets = np.where((labels >= 0) & (target == "label"), labels, full.argmax(axis=1))
        values = probabilities[np.arange(len(targets)), :, targets]
        phi, _ = shapley_from_values(values)
        for row, record in enumerate(records[chunk]):
            states = {m: record.extras.get(f"{m}_state", "") for m in model.modalities}
            credit = {
                m: phi[row, j] if bool(embedded.present[start + row, j]) else 0.0
                for j, m in enumerate(model.modalities)
            }
            clean = [m for m, s in states.items() if s == "clean"]
            for bad, state in states.items():
                if state not in BAD_STATES:
                    continue
                for good in clean:
                    counts[state] += 1
                    wins[state] += int(credit[bad] < credit[good])
    total = sum(counts.values())
    return {
        "rate": sum(wins.values()) / total if total else float("nan"),
        "comparisons": total,
        "by_state": {
            s: {"rate": wins[s] / counts[s] if counts[s] else float("nan"), "comparisons": counts[s]}
            for s in BAD_STATES
        },
        "records": len(records),
        "split": split,
        "target": target,
    }
