"""The verdict: Holm adjustment, ranking and sentences filled from the numbers."""

import numpy as np
import pytest

from core.evaluate import EvaluationOptions, compare
from core.evaluate.bootstrap import holm
from tests.core.evaluate.test_slices import synthetic


def test_holm_on_a_known_case():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def fake_result(name, kind, samples):
    from core.evaluate import CheckpointEvaluation, Curves, Interval, Metrics, ReliabilityBins
    from core.evaluate.analysis import analyse

    options = EvaluationOptions(bootstrap=100)
    accuracy = float(np.mean([s.correct for s in samples]))
    return CheckpointEvaluation(
        name=name, path=f"/ck/{name}", sha256=name, fusion=name, kind=kind, modalities=["image"], classes=["a", "b"],
        dataset="d", dataset_fingerprint="f", split="test", n_rows=len(samples), n_excluded=0, excluded_labels={},
        metrics=Metrics(len(samples), {"accuracy": accuracy}, {}, {}), intervals={"accuracy": Interval(accuracy, accuracy - 0.02, accuracy + 0.02)},
        curves=Curves({}, {}, ReliabilityBins([], [], [], [], []), [], []), samples=samples, missing_modality=[],
        corruptions=[], reliance=[], cost=None, options=options, notes=[], seconds=0.0,
        analysis=analyse(samples, ["image"], ["a", "b"], options),
    )  # fmt: skip


def test_sentences_say_who_wins_where_and_what_fusion_adds():
    strong = synthetic(seed=0, fail_accuracy=0.9)
    weak = synthetic(seed=1, fail_accuracy=0.3)  # the same ids, failing on site C
    alone = [s for s in synthetic(seed=2, fail_accuracy=0.9)]
    for s in alone:
        s.correct = s.correct and s.extras["site"] == "A"
    report = compare([fake_result("attention", "fusion", strong), fake_result("late", "fusion", weak), fake_result("image-only", "unimodal", alone)])
    verdict = report.verdict
    assert [r.name for r in verdict.ranking] == ["attention", "late", "image-only"]
    assert ("attention", "late") in [(a, b) for a, b, _, _ in verdict.significant]
    text = " ".join(verdict.sentences)
    assert text.startswith("attention ranks first of 3 checkpoints by accuracy")
    assert "attention beats late by" in text and "rows where site = C (" in text and "p < 0.001" in text
    assert "The best single modality, image-only" in text and "fusion adds" in text


def test_a_slice_with_the_same_rows_as_another_is_named_with_it():
    strong, weak = synthetic(seed=0, fail_accuracy=0.9), synthetic(seed=1, fail_accuracy=0.3)
    for samples in (strong, weak):
        for s in samples:
            s.extras["scanner"] = "old" if s.extras["site"] == "C" else "new"
    report = compare([fake_result("attention", "fusion", strong), fake_result("late", "fusion", weak)])
    text = " ".join(report.verdict.sentences)
    assert "where scanner = old (the same rows as site = C)" in text or "where site = C (the same rows as scanner = old)" in text
