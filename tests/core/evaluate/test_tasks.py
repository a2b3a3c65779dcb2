"""Evaluation and explanation per task: single-label and multi-label, sharing, mismatches refused."""

import pytest

from core.checkpoints import load_checkpoint
from core.data import load_sample
from core.errors import EvaluationError, ExplanationError
from core.evaluate import EvaluationOptions, evaluate, incompatibility
from core.evaluate.sharing import sharing_comparisons
from core.explain import explain

OPTIONS = EvaluationOptions(bootstrap=100, cost=False, reliance_repeats=1, min_support=5)


def test_each_task_is_evaluated_with_its_own_metrics(multitask_demo):
    dataset, paths = multitask_demo
    parity = evaluate([paths["early"], paths["early.parity"]], dataset, "test", OPTIONS, task="parity")
    assert parity.task == "parity" and parity.task_kind == "single"
    early = parity.by_name("early")
    assert early.classes == ["even", "odd"] and {s.label for s in early.samples} <= {"even", "odd"}
    unlabelled = sum(r.targets["parity"] is None for r in dataset.split("test"))
    assert early.n_excluded == unlabelled and any("no label for the task 'parity'" in n for n in early.notes)
    assert early.analysis is not None and early.corruptions
    [comparison] = sharing_comparisons(parity, resamples=100)
    assert comparison.strategy == "early" and comparison.task == "parity"

    tags = evaluate([paths["early"], paths["late"]], dataset, "test", OPTIONS, task="tags")
    late = tags.by_name("late")
    assert tags.task_kind == "multi" and {"f1_micro", "hamming_loss", "exact_match"} <= set(late.metrics.values)
    assert late.curves.confusion == [] and set(late.curves.roc) >= {"big", "micro", "macro"}
    assert late.thresholds == load_checkpoint(paths["late"]).card.thresholds["tags"]
    assert late.analysis is None and late.corruptions and "f1_micro" in late.corruptions[0].values[0]
    assert tags.verdict.sentences[0].split(" by ")[1].startswith("micro F1")


def test_a_task_a_checkpoint_does_not_predict_is_refused(multitask_demo):
    dataset, paths = multitask_demo
    with pytest.raises(EvaluationError, match="does not predict the task 'tags'"):
        evaluate([paths["early.parity"]], dataset, "test", OPTIONS, task="tags")
    assert "does not predict the task 'label'" in incompatibility(load_checkpoint(paths["early.parity"]), dataset, "label")
    assert incompatibility(load_checkpoint(paths["early"]), dataset, "tags") is None


def test_explanations_are_of_the_chosen_task(multitask_demo):
    dataset, paths = multitask_demo
    loaded = load_checkpoint(paths["early"])
    sample = load_sample(next(r for r in dataset.split("test") if r.image is not None))
    result = explain(loaded, sample, "modality", task="tags", target="prime")["modality"]
    assert result.task == "tags" and result.classes == ["big", "prime", "square"] and result.target_name == "prime"
    with pytest.raises(ExplanationError, match="does not predict the task"):
        explain(loaded, sample, "modality", task="colour")
