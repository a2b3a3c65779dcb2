import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

import core.evaluate as ev
from core.checkpoints import save_checkpoint
from core.cli import main
from core.data import Dataset, build_demo, load_dataset
from core.encoders import encoder_from_choice
from core.evaluate import (
    EvaluationError,
    EvaluationOptions,
    EvaluationReport,
    bootstrap_intervals,
    compute_metrics,
    disagreements,
    evaluate,
    evaluate_cached,
    expected_calibration_error,
    paired_test,
)
from core.fusion import build_fusion
from core.model import MultimodalClassifier

FAST = EvaluationOptions(bootstrap=100, reliance_repeats=2, large_batch=8)


def random_proba(n: int, c: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, c)) * 2
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- metrics on fixed arrays


def test_multiclass_metrics_agree_with_sklearn():
    classes = ["a", "b", "c", "d"]
    y = np.random.default_rng(1).integers(0, 4, size=60)
    p = random_proba(60, 4)
    m = compute_metrics(y, p, classes)
    pred = p.argmax(1)
    onehot = np.eye(4)[y]
    v = m.values
    assert v["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert v["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert v["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert v["precision_weighted"] == pytest.approx(skm.precision_score(y, pred, average="weighted", zero_division=0))
    assert v["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert v["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert v["top_2_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, p, k=2))
    assert v["roc_auc_macro"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert v["roc_auc_micro"] == pytest.approx(skm.roc_auc_score(onehot, p, average="micro"))
    assert v["average_precision_macro"] == pytest.approx(skm.average_precision_score(onehot, p, average="macro"))
    assert v["brier"] == pytest.approx(((p - onehot) ** 2).sum(1).mean())
    assert m.roc_auc_per_class["c"] == pytest.approx(skm.roc_auc_score(y == 2, p[:, 2]))
    assert not m.notes


def test_absent_class_has_no_auc_and_a_note():
    y = np.array([0, 1, 2] * 10)
    p = random_proba(30, 4, seed=2)
    m = compute_metrics(y, p, ["a", "b", "c", "d"])
    assert m.roc_auc_per_class["d"] is None and m.average_precision_per_class["d"] is None
    assert "absent" in m.notes[0] and "d" in m.notes[0]
    onehot = np.eye(4)[y]
    assert m.values["roc_auc_macro"] == pytest.approx(skm.roc_auc_score(onehot[:, :3], p[:, :3], average="macro"))
    assert m.values["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=[0, 1, 2, 3]))


def test_binary_metrics():
    y = np.array([0, 1] * 20)
    p = random_proba(40, 2, seed=3)
    m = compute_metrics(y, p, ["neg", "pos"])
    assert m.values["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p[:, 1]))
    assert m.values["roc_auc_macro"] == pytest.approx(m.values["roc_auc"])
    assert m.values["brier"] == pytest.approx(skm.brier_score_loss(y, p[:, 1]))
    assert m.values["average_precision_macro"] == pytest.approx(
        (skm.average_precision_score(y, p[:, 1]) + skm.average_precision_score(1 - y, p[:, 0])) / 2
    )
    assert not any(k.startswith("top_") for k in m.values)


def test_single_class_split_explains_what_is_undefined():
    y = np.zeros(10, dtype=int)
    p = random_proba(10, 3, seed=4)
    m = compute_metrics(y, p, ["a", "b", "c"])
    assert m.values["accuracy"] == pytest.approx((p.argmax(1) == 0).mean())
    assert m.values["roc_auc_macro"] is None and m.values["average_precision_micro"] is None
    assert "at least two classes" in m.undefined["roc_auc_macro"]
    assert m.notes
    intervals = bootstrap_intervals(y, p, m, resamples=50)
    assert "roc_auc_macro" not in intervals and intervals["accuracy"].low is not None
    with pytest.raises(EvaluationError, match="no rows"):
        compute_metrics(np.zeros(0, dtype=int), np.zeros((0, 3)), ["a", "b", "c"])


def test_ece_on_a_hand_computed_case():
    y = np.array([0, 1, 0, 1])
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    # bins: {0.9: one right one wrong}, {0.6: right}, {0.7: right}
    expected = 2 / 4 * abs(0.5 - 0.9) + 1 / 4 * abs(1 - 0.6) + 1 / 4 * abs(1 - 0.7)
    assert expected_calibration_error(y, p, 15) == pytest.approx(expected)
    assert compute_metrics(y, p, ["a", "b"]).values["ece"] == pytest.approx(expected)


def test_bootstrap_is_seeded_contains_the_estimate_and_matches_sklearn_per_resample():
    y = np.random.default_rng(5).integers(0, 3, size=200)
    p = random_proba(200, 3, seed=5)
    p[np.arange(200), y] += 0.5
    p /= p.sum(1, keepdims=True)
    m = compute_metrics(y, p, ["a", "b", "c"])
    first = bootstrap_intervals(y, p, m, resamples=1000, seed=0)
    assert first == bootstrap_intervals(y, p, m, resamples=1000, seed=0)
    assert first != bootstrap_intervals(y, p, m, resamples=1000, seed=1)
    for name, interval in first.items():
        assert interval.low <= interval.point <= interval.high, name
    # One resample through the vectorised path equals sklearn on the materialised rows.
    weights = ev._resample_weights(200, 1, seed=9)
    rows = np.repeat(np.arange(200), weights[0].astype(int))
    auc = np.mean([ev._weighted_auc(weights, y == c, p[:, c])[0] for c in range(3)])
    assert auc == pytest.approx(skm.roc_auc_score(y[rows], p[rows], multi_class="ovr"))


def test_mcnemar_on_a_known_table():
    def result(name, correct):
        return SimpleNamespace(
            name=name, samples=[SimpleNamespace(id=str(i), correct=c) for i, c in enumerate(correct)]
        )

    # 20 both right, 10 only a, 2 only b, 8 both wrong
    a = [True] * 20 + [True] * 10 + [False] * 2 + [False] * 8
    b = [True] * 20 + [False] * 10 + [True] * 2 + [False] * 8
    test = paired_test(result("a", a), result("b", b), resamples=500)
    assert (test.both_correct, test.only_a_correct, test.only_b_correct, test.both_wrong) == (20, 10, 2, 8)
    assert test.mcnemar_exact_p == pytest.approx(2 * (1 + 12 + 66) / 2**12)
    assert test.mcnemar_chi2 == pytest.approx(49 / 12)
    assert test.mcnemar_chi2_p == pytest.approx(0.04331, abs=1e-4)
    assert test.difference.point == pytest.approx(8 / 40)
    assert test.difference.low <= 0.2 <= test.difference.high


# --------------------------------------------------------------------------- whole pipeline on a tiny dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 100-source demo build and two random-weight checkpoints sharing their encoders;
    ``early`` ignores text entirely (zero projection and missing embedding)."""
    root = tmp_path_factory.mktemp("eval")
    dataset = load_dataset(build_demo(root / "data", seed=3, progress=False, n_source=100))
    torch.manual_seed(0)
    corpus = [r.text for r in dataset.split("train") if r.text]
    encoders = {m: encoder_from_choice(m, "builtin", corpus=corpus) for m in ("audio", "image", "text")}
    dims = {m: e.out_dim for m, e in encoders.items()}
    paths = {}
    for name in ("early", "late"):
        fusion = build_fusion(name, in_dims=dims, num_classes=len(dataset.classes), hidden=16)
        model = MultimodalClassifier(encoders, fusion, dataset.classes)
        if name == "early":
            with torch.no_grad():
                for p in fusion.project["text"].parameters():
                    p.zero_()
                fusion.missing["text"].zero_()
        paths[name] = save_checkpoint(model, root / "ck" / name, {"name": name, "kind": "fusion"})
    five = MultimodalClassifier(
        {"image": encoders["image"]},
        build_fusion("early", in_dims={"image": 128}, num_classes=6, hidden=16),
        dataset.classes[:5] + ["other"],
    )
    paths["five"] = save_checkpoint(five, root / "ck" / "five", {"name": "five", "kind": "unimodal"})
    return SimpleNamespace(root=root, dataset=dataset, paths=paths)


@pytest.fixture(scope="module")
def encode_calls() -> list[int]:
    return []


@pytest.fixture(scope="module")
def report(tiny, encode_calls) -> EvaluationReport:
    real = ev.encode_values
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            ev, "encode_values", lambda enc, values, **kw: encode_calls.append(len(values)) or real(enc, values, **kw)
        )
        return evaluate([tiny.paths["early"], tiny.paths["late"]], tiny.dataset, "test", FAST)


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
    assert isinstance(again.checkpoints[0].metrics, ev.Metrics)


def test_missing_modality_table_has_every_subset(report):
    early = report.by_name("early")
    subsets = [tuple(r.modalities) for r in early.missing_modality]
    assert len(subsets) == 7 == len(set(subsets))
    assert subsets[0] == ("audio", "image", "text")
    assert early.missing_modality[0].values == early.metrics.values


def test_corruption_severity_zero_is_clean_and_others_change_predictions(report):
    early = report.by_name("early")
    assert [s.name for s in early.corruptions] == ["image_noise", "image_occlusion", "audio_noise", "text_dropout"]
    clean = {name: early.metrics.values[name] for name in ev.SWEEP_METRICS}
    for sweep in early.corruptions:
        assert len(sweep.values) >= 6 and sweep.level_labels[0] == "clean"
        assert sweep.values[0] == pytest.approx(clean)
    image_noise = early.corruptions[0]
    assert any(v["log_loss"] != image_noise.values[0]["log_loss"] for v in image_noise.values[1:])
    # early ignores text: dropping words cannot change anything
    assert all(v == early.corruptions[3].values[0] for v in early.corruptions[3].values)


def test_reliance_of_an_ignored_modality_is_zero(report):
    reliance = {r.modality: r for r in report.by_name("early").reliance}
    assert reliance["text"].mean_drop == pytest.approx(0.0, abs=1e-12)
    assert len(reliance["text"].drops) == FAST.reliance_repeats


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


def test_corrupted_embeddings_are_shared_between_checkpoints(report, encode_calls):
    # corruptions x non-clean severities, encoded once for both checkpoints
    assert len(encode_calls) == 4 * 5


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
        ev.evaluate_checkpoint(tiny.paths["five"], narrowed, "test", options)
    with pytest.raises(EvaluationError, match="is empty"):
        ev.evaluate_checkpoint(tiny.paths["five"], narrowed, "val", options)


def test_cache_hit_is_identical_and_does_not_recompute(tiny, tmp_path, monkeypatch):
    calls = []
    real = ev.evaluate_checkpoint
    monkeypatch.setattr(ev, "evaluate_checkpoint", lambda *a, **kw: calls.append(a[0]) or real(*a, **kw))
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


def test_one_at_a_time_with_shared_inputs_matches_one_call(tiny, tmp_path):
    options = EvaluationOptions(bootstrap=50, cost=False)
    paths = [tiny.paths["early"], tiny.paths["late"]]
    together = evaluate_cached(paths, tiny.dataset, "test", options, cache_dir=tmp_path / "together")
    inputs = ev.SplitInputs(tiny.dataset, "test")
    for path in paths:  # what the Compare page does to show progress per checkpoint
        evaluate_cached([path], tiny.dataset, "test", options, cache_dir=tmp_path / "apart", inputs=inputs)
    decoded = inputs.decoded
    apart = evaluate_cached(paths, tiny.dataset, "test", options, cache_dir=tmp_path / "apart")
    assert inputs.decoded is decoded  # decoded once for both checkpoints

    def results(report):  # everything but the wall-clock time
        return [{k: v for k, v in r.to_json().items() if k != "seconds"} for r in report.checkpoints]

    assert results(apart) == results(together)
    with pytest.raises(ValueError, match="another dataset or split"):
        evaluate_cached(paths, tiny.dataset, "val", options, cache_dir=tmp_path, inputs=inputs)


def test_cli_writes_json_and_html_and_refuses_bad_input(tiny, tmp_path, capsys):
    out, html = tmp_path / "e.json", tmp_path / "r.html"
    args = ["evaluate", "--checkpoint", str(tiny.paths["early"]), "--checkpoint", str(tiny.paths["late"])]
    code = main(
        [
            *args,
            "--data",
            str(tiny.root / "data"),
            "--json",
            str(out),
            "--html",
            str(html),
            "--no-robustness",
            "--bootstrap",
            "20",
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["checkpoints"]] == ["early", "late"] and len(data["pairwise"]) == 1
    assert data["checkpoints"][0]["missing_modality"] == [] and html.stat().st_size > 1_000_000
    assert main([*args, "--data", str(tmp_path / "nowhere")]) == 2
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--data", str(tiny.root / "data")]) == 2
    assert main([*args, "--data", str(tiny.root / "data"), "--bootstrap", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and "Traceback" not in err


def test_result_paths_are_plain_strings(report):
    assert isinstance(report.checkpoints[0].path, str) and Path(report.checkpoints[0].path).is_dir()
