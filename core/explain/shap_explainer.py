"""Joint SHAP values over image superpixels, text tokens and audio segments.

All segments of all explained modalities form ONE 0/1 feature vector
``[image segments | text tokens | audio segments]``; the model is wrapped as
``f(mask_matrix [N, D]) -> target probability [N]`` and explained with one of shap's
model-agnostic explainers (shap's multi-input torch explainers are not used):

- ``"partition"`` (default): ``shap.PartitionExplainer`` over a feature hierarchy
  (:mod:`core.explain.partition_tree`: modalities at the top, then compact image
  regions, runs of words, spectrogram blocks). It computes Owen values, shap's own
  default for images and text, exactly once the budget covers the whole tree (about 25
  segments at 500 evaluations). It expands the tree level by level, so the model sees a
  few large batches (8 calls for 412 evaluations on a 22-superpixel image).
- ``"permutation"``: ``shap.PermutationExplainer``, sampled Shapley values of the flat
  game (antithetic permutations). It calls the model once per permutation
  (``2 * features + 1`` masks). On the 2-core CPU both run within 2x of the encoder
  floor (the small demo encoders gain little from larger batches there); the partition
  explainer's few large batches are what a GPU needs.

Both are exactly efficient: the values sum to ``f(all kept) - f(all removed)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import shap

from core.explain.base import Explainer
from core.explain.engine import PerturbationEngine
from core.explain.params import ExplainParams
from core.explain.partition_tree import full_owen_evaluations, joint_tree, segment_tree
from core.explain.result import Explanation

# shap's explainers draw from numpy's global RNG; holding this lock while one runs (seeded,
# with the previous state restored after) keeps results identical when threads explain at once.
_GLOBAL_RNG_LOCK = threading.Lock()


@contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    with _GLOBAL_RNG_LOCK:
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


class ZeroMasker:
    """shap masker: removed features become 0. A plain callable, because shap's tabular
    maskers spend ~10 s compiling numba code on first use; ``clustering`` is the feature
    hierarchy the partition explainer reads."""

    immutable_outputs = True
    """Every call returns a new array, so shap need not deep-copy each masked row."""

    def __init__(self, clustering: np.ndarray | None = None):
        self.clustering = clustering

    def __call__(self, mask: np.ndarray, row: np.ndarray) -> np.ndarray:
        return (row * mask).reshape(1, -1)


def partition_explainer(model: Callable[[np.ndarray], np.ndarray], tree: np.ndarray) -> shap.PartitionExplainer:
    """``shap.PartitionExplainer`` over the linkage ``tree``, with its node-membership matrix dense.

    shap stores which leaves each tree node covers as a scipy sparse matrix and slices one
    row per expanded node; for our trees (tens to a few hundred leaves) a dense boolean
    array (the type shap annotates) is the same data, and the row lookups stop costing a
    third of an explanation's time on a CPU. If shap ever renames the attribute, the
    explainer keeps its own matrix and only the speed-up is lost.
    """
    explainer = shap.PartitionExplainer(model, ZeroMasker(tree))
    masks = getattr(explainer, "_mask_matrix", None)
    if masks is not None and hasattr(masks, "toarray"):
        explainer._mask_matrix = np.asarray(masks.toarray(), dtype=bool)
    return explainer


def warm_up() -> None:
    """Pay shap's one-off costs now (its partition tree code is compiled by numba, ~3 s on
    first use in a process), so the first explanation a user asks for does not."""
    partition_explainer(lambda masks: masks.sum(axis=1), segment_tree(np.arange(3.0).reshape(-1, 1)))


def feature_layout(engine: PerturbationEngine, modalities: list[str]) -> dict[str, slice]:
    """Columns of each modality's segments in the joint feature vector, in ``modalities`` order."""
    layout = {}
    start = 0
    for modality in modalities:
        count = engine.segmentation(modality).n_segments
        layout[modality] = slice(start, start + count)
        start += count
    return layout


def feature_hierarchy(engine: PerturbationEngine, layout: dict[str, slice]) -> np.ndarray:
    """The partition explainer's tree over the joint features of ``layout``."""
    return joint_tree([segment_tree(engine.segmentation(m).positions()) for m in layout])


def split_masks(masks: np.ndarray, layout: dict[str, slice]) -> dict[str, np.ndarray]:
    """``[N, D]`` joint masks -> per-modality ``[N, n_m]`` masks."""
    return {m: masks[:, columns] > 0.5 for m, columns in layout.items()}


def shap_explanation(engine: PerturbationEngine, target: int, modalities: list[str]) -> Explanation:
    """SHAP values of ``engine``'s sample for class ``target`` over the segments of ``modalities``."""
    started = time.perf_counter()
    evaluations_before = engine.evaluations
    params = engine.params
    layout = feature_layout(engine, modalities)
    n_features = sum(s.stop - s.start for s in layout.values())
    calls = 0

    def target_probability(masks: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        return engine.evaluate_masks(split_masks(np.atleast_2d(masks), layout))[:, target]

    if params.shap_algorithm == "partition":
        max_evals = params.shap_evals
        tree = feature_hierarchy(engine, layout)
        engine.expect(min(max_evals, full_owen_evaluations(tree)))
        explainer = partition_explainer(target_probability, tree)
        name = "shap.PartitionExplainer"
    else:
        per_permutation = 2 * n_features + 1
        max_evals = max(params.shap_evals, per_permutation)
        engine.expect((max_evals // per_permutation) * per_permutation + 1)
        explainer = shap.PermutationExplainer(target_probability, ZeroMasker())
        name = "shap.PermutationExplainer"
    with seeded_global_rng(params.seed):
        result = explainer(np.ones((1, n_features)), max_evals=max_evals, batch_size=max_evals, silent=True)
    values = np.asarray(result.values[0], dtype=np.float64)
    base_value = float(np.asarray(result.base_values).reshape(-1)[0])
    explanation = engine.attribution("shap", target, {m: values[columns] for m, columns in layout.items()})
    explanation.metadata.update(
        {
            "explainer": name,
            "max_evals": max_evals,
            "base_value": base_value,
            "full_value": float(engine.probabilities[target]),
            "evaluations": engine.evaluations - evaluations_before,
            "model_calls": calls,
            "runtime_s": time.perf_counter() - started,
        }
    )
    return explanation


class ShapExplainer(Explainer):
    """Joint SHAP values over every modality's segments (partition or permutation explainer)."""

    name = "shap"
    label = "SHAP"
    seeded = True

    def cost(self, params: ExplainParams, n_modalities: int) -> float:
        return float(params.shap_evals)

    def explain(self, engine: PerturbationEngine, target: int, modalities: list[str]) -> Explanation:
        return shap_explanation(engine, target, modalities)
