"""Multi-task training: one head block per task, masked losses, weighting, single-task copies."""

import pytest
import torch

from core.card import read_card
from core.checkpoints import load_checkpoint
from core.data import load_sample
from core.errors import TrainingError
from core.inference import predict
from core.tasks import MULTI, SINGLE, Task
from core.train import parse_model_names
from core.train.loss import MultiTaskLoss


def test_cards_list_every_task_with_metrics_and_thresholds(multitask_demo):
    dataset, paths = multitask_demo
    card = read_card(paths["early"])
    assert [(t.name, t.kind) for t in card.model_tasks()] == [
        ("label", SINGLE),
        ("pitch", SINGLE),
        ("parity", SINGLE),
        ("tags", MULTI),
    ]
    assert set(card.task_metrics) == {"label", "pitch", "parity", "tags"}
    assert {"accuracy", "f1_macro"} <= set(card.task_metrics["parity"]["test"])
    assert {"f1_micro", "hamming_loss", "exact_match"} <= set(card.task_metrics["tags"]["test"])
    assert set(card.thresholds["tags"]) == {"big", "prime", "square"}
    assert card.metrics == card.task_metrics["label"], "the card's headline metrics are the primary task's"
    assert card.fusion_config["num_classes"] == 10 + 2 + 2 + 3
    baseline = read_card(paths["image-only"])
    assert [t.name for t in baseline.model_tasks()] == ["label", "pitch", "parity", "tags"], "baselines learn every task too"


def test_a_single_task_copy_predicts_its_task_only(multitask_demo):
    dataset, paths = multitask_demo
    copy = read_card(paths["early.parity"])
    assert copy.model_tasks() == [Task("parity", SINGLE, ("even", "odd"))] and copy.classes == ["even", "odd"]
    loaded = load_checkpoint(paths["early.parity"])
    prediction = predict(loaded, load_sample(dataset.split("test")[0]))
    assert [t.task for t in prediction.tasks] == ["parity"] and prediction.prediction in ("even", "odd")


def test_predict_gives_every_task(multitask_demo):
    dataset, paths = multitask_demo
    prediction = predict(load_checkpoint(paths["early"]), load_sample(dataset.split("test")[0]))
    assert [t.task for t in prediction.tasks] == ["label", "pitch", "parity", "tags"]
    tags = prediction.tasks[3]
    assert len(tags.probabilities) == 3 and set(tags.predicted) <= set(tags.classes)
    assert sum(prediction.tasks[2].probabilities) == pytest.approx(1.0, abs=1e-5)


def test_rows_without_a_label_do_not_count_and_weights_apply():
    tasks = [Task("a", SINGLE, ("x", "y")), Task("b", MULTI, ("p", "q"))]
    outputs = torch.tensor([[2.0, -1.0, 3.0, -3.0], [0.0, 0.0, -2.0, 2.0]])
    targets = {
        "a": (torch.tensor([0, -1]), torch.tensor([True, False])),
        "b": (torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([True, True])),
    }
    loss = MultiTaskLoss(tasks, weights={"b": 0.5})
    losses = loss.task_losses(outputs, targets)
    assert losses["a"] == pytest.approx(torch.nn.functional.cross_entropy(outputs[:1, :2], torch.tensor([0])))
    assert loss(outputs, targets) == pytest.approx(losses["a"] + 0.5 * losses["b"])
    uncertain = MultiTaskLoss(tasks, weighting="uncertainty")
    assert uncertain.log_variance.requires_grad and uncertain.weights() == {"a": 1.0, "b": 1.0}
    with pytest.raises(TrainingError, match="Unknown task weighting"):
        MultiTaskLoss(tasks, weighting="magic")


def test_single_task_names_expand_per_task():
    names = parse_model_names("early,late,single-task", ["audio", "image"], ["label", "pitch"])
    assert names == ["early", "late", "early.label", "early.pitch", "late.label", "late.pitch"]
    assert parse_model_names("early,single-task", ["image"], ["label"]) == ["early"]
    with pytest.raises(TrainingError, match="no task 'colour'"):
        parse_model_names("early.colour", ["image"], ["label", "pitch"])
