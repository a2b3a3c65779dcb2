"""Checkpoints: never unpickle, detect tampering, refuse mismatched cards, list, atomic writes."""

import json
import pickle
import shutil

import pytest
import torch

from core.card import list_checkpoints, read_card
from core.checkpoints import load_checkpoint, save_checkpoint
from core.errors import CheckpointError


class _Boom:
    """A pickle payload that would create a marker file if it were ever unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _copy(small_checkpoints, tmp_path, name):
    """A private copy of the small demo's ``early`` checkpoint, to damage."""
    return shutil.copytree(small_checkpoints["early"], tmp_path / name)


def _plant(ckpt, file_name, tmp_path):
    """Write the pickle payload as ``ckpt/file_name``; returns the marker it would create."""
    marker = tmp_path / "pwned"
    (ckpt / file_name).write_bytes(pickle.dumps(_Boom(marker)))
    return marker


def test_pickle_checkpoint_is_refused_and_never_runs(tmp_path):
    ckpt = tmp_path / "evil"
    ckpt.mkdir()
    marker = _plant(ckpt, "model.pt", tmp_path)
    with pytest.raises(CheckpointError, match="pickle-based checkpoints are refused"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_pickle_disguised_as_safetensors_is_refused(small_checkpoints, tmp_path):
    ckpt = _copy(small_checkpoints, tmp_path, "disguised")
    marker = _plant(ckpt, "model.safetensors", tmp_path)
    with pytest.raises(CheckpointError, match="modified after it was saved"):
        load_checkpoint(ckpt)
    # Even with a matching hash in the card, safetensors never unpickles.
    card = json.loads((ckpt / "card.json").read_text())
    from core.hashing import sha256_file

    card["weights"]["sha256"] = sha256_file(ckpt / "model.safetensors")
    (ckpt / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_modified_weights_detected(small_checkpoints, tmp_path):
    ckpt = _copy(small_checkpoints, tmp_path, "tampered")
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="modified after it was saved"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(fusion="magic"), "unknown fusion strategy 'magic'"),
        (lambda c: c.update(classes=c["classes"][:-1]), "differ from the card's 'classes'"),
        (lambda c: c.update(classes=c["classes"][:-1], tasks=[]), "num_classes"),
        (lambda c: c.update(format_version=99), "not supported"),
        (lambda c: c["fusion_config"].update(hidden=64), "has shape"),
        (lambda c: c.update(fusion="late"), "do not match the late architecture"),
        (lambda c: c.update(classes="abc"), "'classes' must be a list"),
    ],
)
def test_card_that_does_not_match_weights_is_refused(small_checkpoints, tmp_path, edit, message):
    ckpt = _copy(small_checkpoints, tmp_path, "mismatch")
    card = json.loads((ckpt / "card.json").read_text())
    edit(card)
    (ckpt / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(ckpt)


def test_not_json_card(tmp_path):
    ckpt = tmp_path / "bad"
    ckpt.mkdir()
    (ckpt / "card.json").write_bytes(b"\x00\xff garbage")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_card(ckpt)


def test_loaded_model_is_read_only_eval(small_checkpoints):
    loaded = load_checkpoint(small_checkpoints["late"])
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())


def test_save_is_atomic_and_overwrites(small_checkpoints, tmp_path):
    loaded = load_checkpoint(small_checkpoints["early"])
    target = tmp_path / "copy"
    save_checkpoint(loaded.model, target, name="copy")
    save_checkpoint(loaded.model, target, name="copy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no temp or old folders left
    again = load_checkpoint(target)
    for k, v in loaded.model.state_dict().items():
        torch.testing.assert_close(v, again.model.state_dict()[k])


def test_failed_save_leaves_previous_checkpoint(small_checkpoints, tmp_path, monkeypatch):
    loaded = load_checkpoint(small_checkpoints["early"])
    target = tmp_path / "keep"
    save_checkpoint(loaded.model, target, name="keep")
    before = (target / "card.json").read_text()
    import core.checkpoints as ck

    def explode(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "sha256_file", explode)
    with pytest.raises(OSError):
        save_checkpoint(loaded.model, target, name="keep")
    assert (target / "card.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


def test_list_checkpoints_reports_unreadable(small_checkpoints, tmp_path):
    shutil.copytree(small_checkpoints["early"], tmp_path / "early")
    (tmp_path / "broken").mkdir()
    infos = {i.name: i for i in list_checkpoints(tmp_path)}
    assert infos["early"].error is None and infos["early"].fusion == "early"
    assert infos["early"].test_accuracy is not None
    assert "no card.json" in infos["broken"].error


def test_read_only_mode_refuses_to_write_a_checkpoint(tmp_path, monkeypatch):
    from core.errors import AccessError
    from tests.core.toy import toy_model

    monkeypatch.setenv("FUSION_READ_ONLY", "1")
    with pytest.raises(AccessError, match="read-only"):
        save_checkpoint(toy_model(), tmp_path / "ckpt" / "late", name="late")
    assert not (tmp_path / "ckpt").exists()
