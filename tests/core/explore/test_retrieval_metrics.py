"""Retrieval metrics against hand-computed values and their chance levels against simulation."""

from __future__ import annotations

import numpy as np
import pytest

from core.explore.index import unit_rows
from core.explore.retrieval_metrics import _random_ap, direction_metrics


def test_a_perfect_ranking_scores_one_everywhere():
    centres = {"a": [1, 0, 0], "b": [0, 1, 0], "c": [0, 0, 1]}
    labels = ["a", "a", "b", "b", "c", "c"]
    offsets = np.array([[0, 0.1, 0], [0, 0, 0.1], [0.1, 0, 0], [0, 0, 0.1], [0.1, 0, 0], [0, 0.1, 0]])
    vectors = unit_rows(np.array([centres[label] for label in labels]) + offsets)
    metrics = direction_metrics(vectors, vectors, labels, query="image", target="audio", k=2)
    assert metrics.recall == {"1": 1.0, "5": 1.0, "10": 1.0} and metrics.median_rank == 1
    assert metrics.recall_chance == {"1": 1 / 6, "5": 5 / 6, "10": 1.0} and metrics.median_rank_chance == 3.5
    assert (metrics.precision, metrics.map) == (1.0, 1.0)
    assert metrics.precision_chance == pytest.approx(2 / 6)
    assert metrics.direction == "image → audio"


def test_figures_of_a_hand_made_ranking():
    # similarity[i, j] of query i to gallery item j; with identity queries the gallery is its transpose
    similarity = np.array([[0.9, 0.1, 0.5], [0.3, 0.4, 0.8], [0.2, 0.7, 0.6]])
    metrics = direction_metrics(np.eye(3), similarity.T, ["a", "b", "a"], query="text", target="image", k=1)
    # own items rank 1, 2, 2; the first results are a (right), a (wrong for b), b (wrong for a)
    assert metrics.recall["1"] == pytest.approx(1 / 3) and metrics.median_rank == 2
    assert metrics.precision == pytest.approx(1 / 3)
    # AP: query 0 finds its two a's at ranks 1, 2; query 1 its b at rank 2; query 2 its a's at ranks 2, 3
    assert metrics.map == pytest.approx(np.mean([1.0, 1 / 2, (1 / 2 + 2 / 3) / 2]))


def test_chance_levels_match_random_rankings():
    rng = np.random.default_rng(0)
    labels = rng.choice(list("abcd"), size=200, p=[0.4, 0.3, 0.2, 0.1])
    scores = [
        direction_metrics(
            unit_rows(rng.normal(size=(200, 64))), unit_rows(rng.normal(size=(200, 64))), labels, query="a", target="b"
        )
        for _ in range(5)
    ]
    first = scores[0]
    assert np.mean([s.precision for s in scores]) == pytest.approx(first.precision_chance, abs=0.02)
    assert np.mean([s.map for s in scores]) == pytest.approx(first.map_chance, abs=0.02)
    assert np.mean([s.recall["10"] for s in scores]) == pytest.approx(first.recall_chance["10"], abs=0.03)
    assert np.mean([s.median_rank for s in scores]) == pytest.approx(first.median_rank_chance, rel=0.15)


def test_expected_random_average_precision_formula_matches_simulation():
    rng = np.random.default_rng(1)
    n, r = 30, 7
    simulated = []
    for _ in range(20000):
        relevant = np.zeros(n, bool)
        relevant[rng.choice(n, r, replace=False)] = True
        hits = np.cumsum(relevant)
        simulated.append(np.sum(hits[relevant] / (np.flatnonzero(relevant) + 1)) / r)
    assert _random_ap(np.array([r]), n)[0] == pytest.approx(np.mean(simulated), abs=0.005)


def test_each_side_is_judged_by_the_class_it_shows():
    # Row 1's picture shows an "a" but its voice a "b" (a demo synergy row): its image query is
    # right to find row 0's voice ("a"), and row 0's image query is right to find row 0's own voice.
    similarity = np.array([[0.9, 0.1, 0.2], [0.8, 0.3, 0.1], [0.1, 0.2, 0.9]])
    metrics = direction_metrics(
        np.eye(3), similarity.T, ["a", "a", "c"], query="image", target="audio", k=1, gallery_labels=["a", "b", "c"]
    )
    assert metrics.precision == 1.0  # every first hit shows the query's class
    assert metrics.recall["1"] == pytest.approx(2 / 3)  # instance level still wants a row's own voice
    # chance: the share of the gallery showing each query's class (a: 1 of 3, c: 1 of 3)
    assert metrics.precision_chance == pytest.approx(1 / 3)


def test_shown_class_reads_the_modality_label_column_else_the_row_label():
    from core.data import Record
    from core.explore.retrieval import shown_class

    record = Record(row=1, id="r1", label="7", split="test", extras={"image_label": "3"})
    assert shown_class(record, "image") == "3" and shown_class(record, "audio") == "7"
