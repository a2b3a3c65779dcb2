"""The feature hierarchy of SHAP's partition explainer: valid scipy linkages whose subtrees
are compact groups of one modality, with modalities joined only at the top."""

import numpy as np
import pytest
from scipy.cluster.hierarchy import is_valid_linkage

from core.explain.partition_tree import full_owen_evaluations, joint_tree, segment_tree
from core.explain.segmentation import TextSegmentation, label_centroids


def leaves_under(tree: np.ndarray) -> list[set[int]]:
    """Leaf set of every internal node, in row order."""
    n = len(tree) + 1
    sets: list[set[int]] = []
    for left, right, _, count in tree:
        merged = set()
        for child in (int(left), int(right)):
            merged |= {child} if child < n else sets[child - n]
        assert len(merged) == count
        sets.append(merged)
    return sets


def test_tokens_merge_only_into_runs_of_consecutive_words():
    tokens = TextSegmentation(tuple(["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog"]))
    tree = segment_tree(tokens.positions())
    assert is_valid_linkage(tree) and len(tree) == tokens.n_segments - 1
    for leaves in leaves_under(tree):
        assert leaves == set(range(min(leaves), max(leaves) + 1))


def test_image_regions_group_neighbouring_cells_first():
    labels = np.arange(16).reshape(4, 4).repeat(8, axis=0).repeat(8, axis=1)  # a 4 x 4 grid of cells
    centroids = label_centroids(labels)
    np.testing.assert_allclose(centroids[5], [(8 + 3.5) / 31, (8 + 3.5) / 31])
    tree = segment_tree(centroids)
    assert is_valid_linkage(tree)
    for leaves in leaves_under(tree)[:8]:  # the first merges join edge-adjacent cells
        (a, b) = sorted(leaves)
        assert abs(a // 4 - b // 4) + abs(a % 4 - b % 4) == 1


@pytest.mark.parametrize("sizes", [[5, 1, 3], [1], [1, 1], [4]])
def test_joint_tree_keeps_each_modality_in_one_subtree(sizes):
    rng = np.random.default_rng(0)
    tree = joint_tree([segment_tree(rng.random((n, 2))) for n in sizes])
    total = sum(sizes)
    assert tree.shape == (total - 1, 4)
    if total > 1:
        assert is_valid_linkage(tree) and tree[-1, 3] == total
    groups = leaves_under(tree)
    start = 0
    for n in sizes:
        columns = set(range(start, start + n))
        assert n == 1 or columns in groups  # the modality's own root
        for leaves in groups:  # no node mixes a modality with part of another
            assert leaves <= columns or columns <= leaves or not (leaves & columns)
        start += n


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_full_expansion_count_matches_what_shap_evaluates(n):
    from core.explain.shap_explainer import partition_explainer

    tree = segment_tree(np.arange(n, dtype=float).reshape(-1, 1))
    calls = []

    def model(masks):
        calls.append(len(masks))
        return masks @ np.arange(1.0, n + 1) + masks[:, 0] * masks[:, -1]  # additive + one interaction

    partition_explainer(model, tree)(np.ones((1, n)), max_evals=10_000, batch_size=10_000, silent=True)
    assert sum(calls) == full_owen_evaluations(tree)
