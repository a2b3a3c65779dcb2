"""Training: model-name parsing, reproducibility, card contents, progress events."""

import json

import pytest

from core.card import list_checkpoints, read_card
from core.checkpoints import load_checkpoint
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


def _weights(out) -> dict[str, str]:
    return {info.name: read_card(info.path).sha256 for info in list_checkpoints(out)}


def test_side_by_side_processes_give_what_one_process_gives(small_demo, tmp_path, monkeypatch):
    """Trainings run side by side in single-threaded processes leave the same checkpoints (and emit the
    same events) as the same trainings run one after another in one single-threaded process."""
    import torch

    from core.train import trainer as trainer_module

    events = []
    Trainer(small_demo, tmp_path / "side", FAST, show_progress=False, callback=events.append).run(["early", "late"])
    monkeypatch.setattr(trainer_module, "can_run_side_by_side", lambda device, world: False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = []
        Trainer(small_demo, tmp_path / "alone", FAST, show_progress=False, callback=alone.append).run(["early", "late"])
    finally:
        torch.set_num_threads(threads)
    assert _weights(tmp_path / "side") == _weights(tmp_path / "alone")
    assert len(_weights(tmp_path / "side")) == 5
    epochs = lambda log: sorted((e["model"], e["epoch"], e["train_loss"]) for e in log if e["event"] == "epoch")  # noqa: E731
    assert epochs(events) == epochs(alone)


def test_decoding_workers_do_not_change_the_weights(small_demo, tmp_path, monkeypatch):
    """Stage-1 inputs decoded and prepared by worker processes (from a non-main thread: one process,
    workers started by a fork server) train the same encoder as inputs prepared in the process."""
    import threading

    from core.train import loop

    monkeypatch.setattr(loop, "PREPARE_CHUNK", 8)  # so that the small demo needs workers
    out = {}

    def train(workers: str) -> None:
        monkeypatch.setenv("FUSION_WORKERS", workers)
        thread = threading.Thread(
            target=lambda: out.update({workers: Trainer(small_demo, tmp_path / workers, FAST, show_progress=False).run(["image-only"])})
        )
        thread.start()
        thread.join()

    train("0")
    train("2")
    assert _weights(tmp_path / "0") == _weights(tmp_path / "2")
    assert out["0"][0].metrics == out["2"][0].metrics


def test_inputs_prepared_during_stage_one_leave_the_same_checkpoints(small_demo, tmp_path, monkeypatch):
    """With spare cores stage 1's parent prepares the training rows of the encoders still
    training (:mod:`core.train.ahead`); stage 2 embeds them without decoding again, and every
    checkpoint is the one a run without it leaves."""
    from core.encoders.cache import EmbeddingCache
    from core.train import ahead, side_by_side
    from core.train import trainer as trainer_module

    monkeypatch.setattr(side_by_side, "cpu_count", lambda: 4)  # a slot is free from the start
    handed = []
    real = trainer_module.embed_records

    def counting(model, records, prepared=None, **kwargs):  # rows of this call whose inputs are ready
        ready = prepared or {}
        handed.append(sum(r.content_hash(m) in ready.get(m, {}) for m in model.modalities for r in records if getattr(r, m) is not None))
        return real(model, records, prepared=prepared, **kwargs)

    monkeypatch.setattr(trainer_module, "embed_records", counting)
    Trainer(small_demo, tmp_path / "ahead", FAST, cache=EmbeddingCache(tmp_path / "c1"), show_progress=False).run(["early"])
    assert max(handed) > 0
    monkeypatch.setattr(ahead, "AHEAD_BYTES", 0)
    handed.clear()
    Trainer(small_demo, tmp_path / "plain", FAST, cache=EmbeddingCache(tmp_path / "c2"), show_progress=False).run(["early"])
    assert max(handed) == 0
    assert _weights(tmp_path / "ahead") == _weights(tmp_path / "plain")
