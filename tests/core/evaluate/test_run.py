"""Evaluating checkpoints end to end on a tiny dataset: the report, its JSON, disagreements, errors."""

import json
from pathlib import Path

import pytest

from core.data import Dataset
from core.errors import EvaluationError
from core.evaluate import EvaluationOptions, EvaluationReport, Metrics, disagreements, evaluate, evaluate_checkpoint
from tests.core.evaluate.conftest import FAST


def test_report_holds_everything_and_round_trips_json(report, tiny):
    early = report.by_name("early")
    n_test = len(tiny.dataset.split("test"))
    assert early.n_rows == n_test and early.n_excluded == 0 and len(early.samples) == n_test
    assert {"image_state", "audio_state", "text_state"} <= set(early.samples[0].extras)
    assert early.cost.parameters > early.cost.fusion_parameters > 0
    assert early.cost.latency_ms_end_to_end > early.cost.latency_ms_fusion > 0
    assert set(early.curves.roc) >= {"micro", "macro"}
    assert len(report.pairwise) == 1
    text = json.dumps(report.to_json())
    assert "NaN" not in text
    again = EvaluationReport.from_json(text)
    assert again.to_json() == report.to_json()
    assert isinstance(again.checkpoints[0].metrics, Metrics)


def test_disagreements_list_rows_predicted_differently(report):
    rows = disagreements(report)
    preds = {
        name: {s.id: s.prediction for s in r.samples}
        for name, r in zip(["early", "late"], report.checkpoints, strict=True)
    }
    expected = [i for i in preds["early"] if preds["early"][i] != preds["late"][i]]
    assert [r["id"] for r in rows] == expected
    for row in rows:
        assert set(row["predictions"]) == {"early", "late"} and "image_state" in row["extras"]


def test_unknown_labels_are_excluded_and_counted(tiny):
    result = evaluate([tiny.paths["five"]], tiny.dataset, "test", FAST).checkpoints[0]
    labels = [r.label for r in tiny.dataset.split("test")]
    unknown = sum(label not in tiny.dataset.classes[:5] for label in labels)
    assert 0 < unknown < len(labels)
    assert result.n_excluded == unknown and sum(result.excluded_labels.values()) == unknown
    assert result.metrics.n == len(labels) - unknown
    assert any("left out" in note for note in result.notes)
    assert result.metrics.roc_auc_per_class["other"] is None
    assert len(result.missing_modality) == 1 and [s.modality for s in result.corruptions] == ["image", "image"]
    with pytest.raises(EvaluationError, match="Unknown corruption"):
        evaluate([tiny.paths["five"]], tiny.dataset, "test", EvaluationOptions(corruptions=("blur",)))


def test_empty_split_and_no_known_label_give_clear_errors(tiny):
    options = EvaluationOptions(bootstrap=0, robustness=False, cost=False)
    five_only = [r for r in tiny.dataset.split("test") if r.label not in tiny.dataset.classes[:5]]
    narrowed = Dataset(tiny.dataset.root, five_only, tiny.dataset.classes, "fp", limits=tiny.dataset.limits)
    with pytest.raises(EvaluationError, match="has a label the checkpoint"):
        evaluate_checkpoint(tiny.paths["five"], narrowed, "test", options)
    with pytest.raises(EvaluationError, match="is empty"):
        evaluate_checkpoint(tiny.paths["five"], narrowed, "val", options)


def test_result_paths_are_plain_strings(report):
    assert isinstance(report.checkpoints[0].path, str) and Path(report.checkpoints[0].path).is_dir()


def test_from_a_request_thread_the_sweeps_run_beside_the_analyses_with_the_same_results(tiny, monkeypatch):
    """A dashboard request (not the main thread) sweeps corruptions on a helper thread while it
    computes the analyses; the result equals the one computed step by step on the main thread."""
    import threading

    from core.evaluate import run

    monkeypatch.setenv("FUSION_WORKERS", "0")
    options = EvaluationOptions(bootstrap=50, reliance_repeats=2, cost=False)
    sweeping_threads = []
    real = run.corruption_sweeps

    def recorded(*args, **kwargs):
        sweeping_threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(run, "corruption_sweeps", recorded)
    here = evaluate_checkpoint(tiny.paths["early"], tiny.dataset, "test", options, embedding_cache=False)
    out = {}
    thread = threading.Thread(
        target=lambda: out.update(result=evaluate_checkpoint(tiny.paths["early"], tiny.dataset, "test", options, embedding_cache=False)),
        name="request",
    )
    thread.start()
    thread.join()
    assert sweeping_threads[0] == "MainThread" and sweeping_threads[1].startswith("corruption-sweeps")
    there = out["result"]
    assert there.corruptions and [s.to_json() for s in there.corruptions] == [s.to_json() for s in here.corruptions]
    for field in ("metrics", "intervals", "missing_modality", "reliance", "analysis", "samples"):
        assert json.dumps(getattr(there, field), default=lambda o: o.to_json()) == json.dumps(
            getattr(here, field), default=lambda o: o.to_json()
        ), field
