"""Quality checks of one explanation: faithfulness curves and agreement between methods.

Checks of explanations against a dataset's ground truth live in :mod:`core.evaluate.ground_truth`."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from core.explain.engine import PerturbationEngine
from core.explain.result import Explanation, FaithfulnessCurves

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


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman rank correlation of two equally long score vectors; ``nan`` when either is
    constant or has fewer than two values."""
    a = np.asarray(first, dtype=np.float64).ravel()
    b = np.asarray(second, dtype=np.float64).ravel()
    if len(a) != len(b) or len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def agreement(first: Explanation, second: Explanation) -> dict[str, float]:
    """Spearman rank correlation of two explanations' segment scores, per shared modality.

    Both must come from the same segmentation (same sample and settings); a modality with
    constant scores in either gets ``nan``.
    """
    shared = sorted(set(first.segment_scores) & set(second.segment_scores))
    return {m: rank_correlation(first.segment_scores[m], second.segment_scores[m]) for m in shared}
