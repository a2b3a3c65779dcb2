"""Training: model-name parsing, reproducibility, card contents, progress events."""

import json

import pytest

from core.checkpoints import load_checkpoint, read_card
from core.errors import TrainingError
from core.fusion import FUSIONS
from core.inference import predict_proba
from core.train import Trainer, parse_model_names
from tests.conftest import fast_config

FAST = fast_config()


def test_parse_model_names():
    mods = ["audio", "image", "text"]
    assert parse_model_names("all", mods) == list(FUSIONS)
    assert parse_model_names("baselines", mods) == ["audio-only", "image-only", "text-only"]
    assert parse_model_names("early, image-only,early", mods) == ["early", "image-only"]
    with pytest.raises(TrainingError, match="Unknown model 'bogus'"):
        parse_model_names("bogus", mods)
    with pytest.raises(TrainingError, match="no 'audio' modality"):
        parse_model_names("audio-only", ["image", "text"])
    with pytest.raises(TrainingError, match="at least one"):
        parse_model_names(" , ", mods)


def test_checkpoints_have_complete_cards(small_checkpoints, small_demo):
    for name, path in small_checkpoints.items():
        card = read_card(path)
        assert card.name == name
        assert card.dataset.fingerprint == small_demo.fingerprint
        assert card.classes == small_demo.classes
        assert set(card.metrics) == {"val", "test"}
        assert set(card.metrics["test"]) == {"n", "accuracy", "balanced_accuracy", "f1_macro", "log_loss"}
        assert 0.0 <= card.metric("test", "accuracy") <= 1.0
        assert card.training.epochs_run >= 1
        assert card.versions["torch"]
    assert read_card(small_checkpoints["image-only"]).modalities == ["image"]
    assert read_card(small_checkpoints["early"]).modalities == ["audio", "image", "text"]


def test_same_seed_same_metrics(small_demo, tmp_path):
    """Training the same config twice with the same seed gives the same metrics and weights."""
    runs = [Trainer(small_demo, tmp_path / f"run{i}", FAST, show_progress=False).run(["gated"]) for i in range(2)]
    assert runs[0][0].metrics == runs[1][0].metrics
    cards = [read_card(r[0].path) for r in runs]
    assert cards[0].sha256 == cards[1].sha256
    assert cards[0].training.history == cards[1].training.history


def test_progress_events(small_demo, tmp_path):
    events = []
    Trainer(small_demo, tmp_path, FAST, show_progress=False, callback=events.append).run(["text-only"])
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    epochs = [e for e in events if e["event"] == "epoch"]
    assert epochs and {"train_loss", "val_loss", "val_accuracy", "model"} <= set(epochs[0])
    assert any(e["event"] == "saved" and e["model"] == "text-only" for e in events)
    json.dumps(events)  # events are JSON-serialisable, for the dashboard's run log


def test_trained_checkpoint_predicts_like_training_metrics(small_checkpoints, small_demo):
    """Reloading gives the same test accuracy as recorded in the card."""
    from core.data import load_sample
    from core.embeddings import labels_to_indices
    from core.evaluate import headline_metrics

    loaded = load_checkpoint(small_checkpoints["early"])
    test = small_demo.split("test")
    proba = predict_proba(loaded.model, [load_sample(r) for r in test])
    y = labels_to_indices([r.label for r in test], loaded.model.classes).numpy()
    assert headline_metrics(y, proba)["accuracy"] == pytest.approx(loaded.card.metric("test", "accuracy"), abs=1e-6)
