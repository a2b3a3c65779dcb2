"""Cross-modal retrieval on the small demo: training, the checkpoint's safety, scoring and searching."""

from __future__ import annotations

import json

import pytest
import torch

from core.checkpoints import load_checkpoint
from core.data import load_sample
from core.encoders.cache import EmbeddingCache
from core.errors import CheckpointError, ExploreError
from core.explore import RetrievalConfig, RetrievalReport, load_retrieval, retrieve, split_spaces, train_retrieval
from core.explore.retrieval import _train_pair
from core.explore.retrieval_metrics import direction_metrics
from core.explore.retrieval_model import RETRIEVAL_WEIGHTS, RetrievalModel, list_retrieval, read_retrieval_card
from core.settings import Settings

FAST = RetrievalConfig(epochs=15, patience=5, seed=0)
FAST_SYNTHETIC = RetrievalConfig(epochs=60, patience=10, batch_size=64, seed=0)


@pytest.fixture(scope="module")
def trained(small_demo, small_checkpoints, small_demo_files, tmp_path_factory):
    source = load_checkpoint(small_checkpoints["early"])
    cache = EmbeddingCache(small_demo_files.cache / "embeddings")
    path = train_retrieval(source, small_demo, tmp_path_factory.mktemp("retrieval") / "early", FAST, cache=cache)
    return path, source, cache


def test_training_writes_a_checkpoint_whose_card_holds_every_direction(trained, small_demo):
    path, source, _ = trained
    assert sorted(p.name for p in path.iterdir()) == ["card.json", RETRIEVAL_WEIGHTS]
    card = read_retrieval_card(path)
    assert card.pairs == [["audio", "image"], ["audio", "text"], ["image", "text"]]
    assert card.source.sha256 == source.card.sha256 and set(card.source.encoders) == {"audio", "image", "text"}
    assert card.dataset.fingerprint == small_demo.fingerprint
    report = RetrievalReport.from_json(card.report)
    assert {(d.query, d.target) for d in report.directions} == {
        (a, b) for a in ("audio", "image", "text") for b in ("audio", "image", "text") if a != b
    }
    for d in report.directions:
        assert d.queries == d.gallery > 1 and 0 < d.recall_chance["1"] < d.recall_chance["10"] <= 1
        assert 0 <= d.precision <= 1 and 0 < d.map <= 1 and d.median_rank >= 1
    assert report.split == "test" and report.dataset_fingerprint == small_demo.fingerprint


def test_infonce_heads_learn_to_match_modalities_that_share_only_a_class():
    """Two modalities whose embeddings share nothing but the row's class (as in the demo): after
    training, an image query's nearest audio items are of its class far more often than chance."""
    generator = torch.Generator().manual_seed(0)

    def embeddings(labels: torch.Tensor, dim: int) -> torch.Tensor:
        centres = torch.randn(5, dim, generator=generator) * 2
        return centres[labels] + torch.randn(len(labels), dim, generator=generator)

    labels = torch.randint(0, 5, (600,), generator=generator)
    images, audio = embeddings(labels, 12), embeddings(labels, 20)  # independent spaces, linked by class only
    model = RetrievalModel({"image": 12, "audio": 20}, [("audio", "image")], dim=16, hidden=32)
    train, val = slice(0, 400), slice(400, 500)
    _train_pair(model, "audio", "image", (audio[train], images[train]), (audio[val], images[val]), FAST_SYNTHETIC, None)
    model.eval()
    with torch.no_grad():
        za = model.project("audio-image", "audio", audio[500:]).numpy()
        zi = model.project("audio-image", "image", images[500:]).numpy()
    metrics = direction_metrics(zi, za, labels[500:].numpy(), query="image", target="audio", k=10)
    assert metrics.precision > 0.8 > 3 * metrics.precision_chance
    assert metrics.map > 2 * metrics.map_chance


def test_the_same_seed_trains_the_same_heads(trained, small_demo):
    path, source, cache = trained
    again = train_retrieval(source, small_demo, path.parent / "again", FAST, pairs=[("image", "audio")], cache=cache)
    first, second = load_retrieval(path).model.state_dict(), load_retrieval(again).model.state_dict()
    assert set(second) < set(first)
    assert all(torch.equal(second[k], first[k]) for k in second if k.startswith("heads.audio-image"))


def test_a_tampered_or_foreign_retrieval_checkpoint_is_refused(trained, tmp_path):
    path, _, _ = trained
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    data = bytearray((copy / RETRIEVAL_WEIGHTS).read_bytes())
    data[-1] ^= 1
    (copy / RETRIEVAL_WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="modified after it was saved"):
        load_retrieval(copy)

    card = json.loads((path / "card.json").read_text())
    for change, message in [
        ({"format": "fusion-checkpoint"}, "format"),
        ({"dim": 10**9}, "whole numbers"),
        ({"pairs": [["image", "image"]]}, "pairs"),
    ]:
        (copy / "card.json").write_text(json.dumps({**card, **change}))
        with pytest.raises(CheckpointError, match=message):
            load_retrieval(copy)
    (copy / "card.json").unlink()
    (copy / "model.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(CheckpointError, match="pickle"):
        load_retrieval(copy)
    assert [error is not None for _, _, error in list_retrieval(tmp_path)] == [True]


def test_retrieving_audio_for_an_image_returns_k_audio_records_best_first(trained, small_demo):
    path, source, cache = trained
    retrieval = load_retrieval(path)
    spaces = split_spaces(source, small_demo, "test", cache=cache)
    record = next(r for r in small_demo.split("test") if r.image is not None)
    result = retrieve(retrieval, spaces, load_sample(record), "image", "audio", 5, source=source)
    assert len(result.hits) == 5 and [h.rank for h in result.hits] == [1, 2, 3, 4, 5]
    assert all(a.similarity >= b.similarity for a, b in zip(result.hits, result.hits[1:], strict=False))
    with_audio = {r.id for r in small_demo.split("test") if r.audio is not None}
    assert {h.id for h in result.hits} <= with_audio
    with pytest.raises(ExploreError, match="cannot retrieve image from image"):
        retrieve(retrieval, spaces, load_sample(record), "image", "image", 5, source=source)


def test_a_checkpoint_with_other_encoders_cannot_stand_in_for_the_source(trained, small_checkpoints, small_demo):
    path, _, cache = trained
    other = load_checkpoint(small_checkpoints["image-only"])  # no audio or text encoder
    spaces = split_spaces(other, small_demo, "test", cache=cache)
    record = next(r for r in small_demo.split("test") if r.image is not None)
    with pytest.raises(CheckpointError, match="encodes audio differently"):
        retrieve(load_retrieval(path), spaces, load_sample(record), "image", "audio", 5, source=other)


def test_the_retrieval_folder_is_a_setting(tmp_path):
    assert Settings.from_env({"FUSION_RETRIEVAL": str(tmp_path)}).retrieval_dir == tmp_path
