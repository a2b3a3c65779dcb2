"""The feature hierarchy SHAP's partition explainer walks: segments grouped by where they lie.

Within a modality, segments are merged bottom-up by Ward linkage on their positions
(superpixel centroids, token order, time x frequency centres), so a coalition is a
compact image region, a run of consecutive words or a block of the spectrogram. The
modalities' trees are then joined at the top, in the order given, so the explainer
first splits credit between modalities and then within each one.

Trees use scipy's linkage format, which shap reads: row ``k`` merges nodes
``[k, 0]`` and ``[k, 1]`` into node ``n_leaves + k`` at distance ``[k, 2]``,
covering ``[k, 3]`` leaves.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import linkage


def segment_tree(positions: np.ndarray) -> np.ndarray:
    """``[n - 1, 4]`` Ward linkage of ``n`` segment positions (``[n, d]``); empty for one segment."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 2:
        return np.zeros((0, 4))
    return linkage(positions, method="ward")


def joint_tree(trees: list[np.ndarray]) -> np.ndarray:
    """One linkage over the concatenated leaves of several per-modality linkages.

    ``trees[i]`` covers ``len(trees[i]) + 1`` leaves (its modality's segments); leaves are
    numbered modality after modality. The modality roots are chained at the top at a
    distance above every within-modality merge.
    """
    n_leaves = sum(len(tree) + 1 for tree in trees)
    rows: list[list[float]] = []
    roots: list[tuple[int, int]] = []
    first_leaf = 0
    top = 1.0 + max((float(tree[:, 2].max()) for tree in trees if len(tree)), default=0.0)
    for tree in trees:
        size = len(tree) + 1
        first_row = len(rows)

        def node(index: float, size: int = size, first_leaf: int = first_leaf, first_row: int = first_row) -> int:
            index = int(index)
            return first_leaf + index if index < size else n_leaves + first_row + index - size

        rows.extend([node(left), node(right), float(distance), float(count)] for left, right, distance, count in tree)
        roots.append((first_leaf if size == 1 else n_leaves + len(rows) - 1, size))
        first_leaf += size
    joined, covered = roots[0] if roots else (0, 0)
    for step, (root, size) in enumerate(roots[1:]):
        covered += size
        rows.append([joined, root, top + step, covered])
        joined = n_leaves + len(rows) - 1
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def full_owen_evaluations(tree: np.ndarray) -> int:
    """Model evaluations shap's partition explainer needs to expand ``tree`` completely.

    It evaluates everything-kept and nothing-kept once, then two masks for each
    (internal node, context) pair it expands; every expanded pair hands each child two
    contexts, so a node at depth ``d`` is expanded ``2 ** d`` times.
    """
    n_leaves = len(tree) + 1
    depth = {2 * n_leaves - 2: 0}  # the root
    total = 0
    for row in range(len(tree) - 1, -1, -1):  # parents come after their children in a linkage
        node = n_leaves + row
        total += 2 * 2 ** depth[node]
        for child in tree[row, :2].astype(int):
            depth[int(child)] = depth[node] + 1
    return 2 + total
