"""Class imbalance: inverse-frequency weights, the balanced sampler, and the warning threshold."""

import pytest
import torch

from core.card import read_card
from core.errors import TrainingError
from core.tasks import MULTI, SINGLE, Task
from core.train import Trainer
from core.train.imbalance import (
    balanced_order,
    check_class_options,
    imbalance_ratio,
    inverse_frequency_weights,
)
from core.train.loss import MultiTaskLoss
from tests.conftest import fast_config

DIGITS = Task("label", SINGLE, ("a", "b", "c"))


def test_imbalance_ratio():
    assert imbalance_ratio({"a": 50, "b": 10, "c": 25}) == 5.0
    assert imbalance_ratio({"a": 3, "b": 0}) == float("inf")
    assert imbalance_ratio({"a": 3}) == 1.0


def test_inverse_frequency_weights_make_every_class_count_the_same():
    y = torch.tensor([0] * 6 + [1] * 3 + [2] * 1 + [1])
    known = torch.tensor([True] * 10 + [False])
    weights = inverse_frequency_weights([DIGITS], {"label": (y, known)})["label"]
    assert torch.allclose(weights, torch.tensor([10 / 18, 10 / 9, 10 / 3]))
    counts = torch.tensor([6.0, 3.0, 1.0])
    assert torch.allclose(weights * counts, torch.full((3,), 10 / 3))
    tags = Task("tags", MULTI, ("x", "y"))
    multi = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    pos = inverse_frequency_weights([tags], {"tags": (multi, torch.ones(4, dtype=torch.bool))})["tags"]
    assert torch.allclose(pos, torch.tensor([1 / 3, 3.0]))


def test_weighted_loss_is_the_weighted_cross_entropy():
    logits = torch.randn(11, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0] * 6 + [1] * 3 + [2] * 2)
    targets = {"label": (y, torch.ones(11, dtype=torch.bool))}
    weights = inverse_frequency_weights([DIGITS], targets)
    loss = MultiTaskLoss([DIGITS], class_weights=weights)(logits, targets)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits, y, weight=weights["label"]))
    assert not torch.allclose(loss, MultiTaskLoss([DIGITS])(logits, targets))


def test_balanced_order_draws_every_class_equally_often_and_reproducibly():
    y = torch.tensor([0] * 90 + [1] * 9 + [2] * 1 + [0] * 10)
    known = torch.tensor([True] * 100 + [False] * 10)
    order = balanced_order((y, known), seed=0, epoch=1, multiple=4)
    assert len(order) == 112
    labelled = y[order][known[order]]
    shares = torch.bincount(labelled, minlength=3).float() / len(labelled)
    assert torch.all((shares - 1 / 3).abs() < 0.1), shares
    assert torch.equal(order, balanced_order((y, known), seed=0, epoch=1, multiple=4))
    assert not torch.equal(order, balanced_order((y, known), seed=0, epoch=2, multiple=4))


def test_bad_class_options_are_refused():
    with pytest.raises(TrainingError, match="Unknown class weighting"):
        check_class_options("inverse", False, DIGITS)
    with pytest.raises(TrainingError, match="multi-label"):
        check_class_options("none", True, Task("tags", MULTI, ("x", "y")))


def test_training_with_class_weights_and_the_balanced_sampler(small_demo, tmp_path):
    config = fast_config()
    config.class_weights, config.balanced_sampler = "auto", True
    result = Trainer(small_demo, tmp_path, config, show_progress=False).run(["text-only"])[0]
    recorded = read_card(result.path).training.config
    assert recorded["class_weights"] == "auto" and recorded["balanced_sampler"] is True
    assert result.epochs >= 1


def test_a_run_passes_augmentation_and_balance_options_to_the_command(tmp_path):
    from core.train.runs import RunSpec

    spec = RunSpec(data="d", out="o", models=("early",), augment=("image", "text"), class_weights="auto", balanced_sampler=True)
    cmd = spec.command(tmp_path / "events.jsonl")
    assert cmd[cmd.index("--augment") + 1] == "image,text"
    assert cmd[cmd.index("--class-weights") + 1] == "auto" and "--balanced-sampler" in cmd
    assert "--augment" not in RunSpec(data="d", out="o", models=("early",)).command(tmp_path / "e")
    assert RunSpec.from_json({"data": "d", "out": "o", "models": ["early"], "augment": ["text"]}).augment == ("text",)
