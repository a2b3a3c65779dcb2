"""The evaluation cache: hits are identical and not recomputed; checkpoint-by-checkpoint equals one call."""

import json

import pytest

import core.evaluate.run as evaluation_run
from core.evaluate import EvaluationOptions, SplitInputs, evaluate_cached
from tests.core.evaluate.conftest import count_sweep_encodes


def test_cache_hit_is_identical_and_does_not_recompute(tiny, tmp_path, monkeypatch):
    calls = []
    real = evaluation_run.evaluate_checkpoint
    monkeypatch.setattr(evaluation_run, "evaluate_checkpoint", lambda *a, **kw: calls.append(a[0]) or real(*a, **kw))
    options = EvaluationOptions(bootstrap=50, robustness=False, cost=False)
    paths = [tiny.paths["early"], tiny.paths["late"]]
    first = evaluate_cached(paths, tiny.dataset, "test", options, cache_dir=tmp_path)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.json"))) == 2
    second = evaluate_cached(paths, tiny.dataset, "test", options, cache_dir=tmp_path)
    assert len(calls) == 2
    assert [r.to_json() for r in second.checkpoints] == [r.to_json() for r in first.checkpoints]
    assert [t.to_json() for t in second.pairwise] == [t.to_json() for t in first.pairwise]
    victim = sorted(tmp_path.glob("*.json"))[0]
    victim.write_text('{"truncated": ')
    third = evaluate_cached(paths, tiny.dataset, "test", options, cache_dir=tmp_path)
    assert len(calls) == 3 and json.loads(victim.read_text())["name"] in {"early", "late"}
    assert [r.metrics.to_json() for r in third.checkpoints] == [r.metrics.to_json() for r in first.checkpoints]
    evaluate_cached(
        paths, tiny.dataset, "test", EvaluationOptions(bootstrap=51, robustness=False, cost=False), cache_dir=tmp_path
    )
    assert len(calls) == 5  # other options, other key


def test_one_at_a_time_with_shared_inputs_matches_one_call(tiny, tmp_path, monkeypatch):
    options = EvaluationOptions(bootstrap=50, cost=False)
    paths = [tiny.paths["early"], tiny.paths["late"]]
    together = evaluate_cached(paths, tiny.dataset, "test", options, cache_dir=tmp_path / "together", embedding_cache=False)
    encoded = []
    count_sweep_encodes(monkeypatch, encoded)
    inputs = SplitInputs(tiny.dataset, "test")
    for path in paths:  # what the Compare page does to show progress per checkpoint
        evaluate_cached([path], tiny.dataset, "test", options, cache_dir=tmp_path / "apart", inputs=inputs, embedding_cache=False)
    assert len(encoded) == 4 * 5  # corrupted once for both checkpoints: 4 corruptions, 5 severities each
    apart = evaluate_cached(paths, tiny.dataset, "test", options, cache_dir=tmp_path / "apart")

    def results(report):  # everything but the wall-clock time
        return [{k: v for k, v in r.to_json().items() if k != "seconds"} for r in report.checkpoints]

    assert results(apart) == results(together)
    with pytest.raises(ValueError, match="another dataset or split"):
        evaluate_cached(paths, tiny.dataset, "val", options, cache_dir=tmp_path, inputs=inputs)
