"""Representation spaces of real checkpoints on the small demo: what an upload gets is what a record gets."""

from __future__ import annotations

import numpy as np
import pytest

from core.checkpoints import load_checkpoint
from core.data import load_sample
from core.encoders.cache import EmbeddingCache
from core.errors import ExploreError, UsageError
from core.explore.spaces import FUSED, records_of, sample_vectors, split_spaces


@pytest.fixture(scope="module")
def cache(small_demo_files) -> EmbeddingCache:
    return EmbeddingCache(small_demo_files.cache / "embeddings")


def test_each_modality_and_the_fused_output_are_spaces(small_demo, small_checkpoints, cache):
    loaded = load_checkpoint(small_checkpoints["early"])
    spaces = split_spaces(loaded, small_demo, "test", cache=cache)
    assert list(spaces.spaces) == ["audio", "image", "text", FUSED]
    records = small_demo.split("test")
    for modality in ("audio", "image", "text"):
        space = spaces.space(modality)
        assert [records[i].id for i in space.positions] == [r.id for r in records if getattr(r, modality) is not None]
        assert space.vectors.shape == (len(space), loaded.model.encoders[modality].out_dim)
    assert spaces.space(FUSED).vectors.shape == (len(records), loaded.model.fusion.out_dim)
    assert "before the classification head" in spaces.space(FUSED).note
    with pytest.raises(ExploreError, match="no 'colour' space"):
        spaces.space("colour")


def test_late_fusion_says_its_fused_space_is_logits(small_demo, small_checkpoints, cache):
    loaded = load_checkpoint(small_checkpoints["late"])
    spaces = split_spaces(loaded, small_demo, "val", cache=cache)
    # every task's logits side by side: the demo's label (10 classes) and pitch (2)
    assert spaces.space(FUSED).vectors.shape[1] == sum(len(t.classes) for t in small_demo.tasks) == loaded.model.outputs
    assert "class logits" in spaces.space(FUSED).note


def test_an_upload_gets_the_same_vectors_as_the_dataset_record(small_demo, small_checkpoints, cache):
    loaded = load_checkpoint(small_checkpoints["early"])
    spaces = split_spaces(loaded, small_demo, "test", cache=cache)
    records = small_demo.split("test")
    row = next(i for i, r in enumerate(records) if r.image is not None and r.text is None)
    vectors = sample_vectors(loaded, load_sample(records[row]))
    assert set(vectors) == {*records[row].present(), FUSED}
    image_row = int(np.flatnonzero(spaces.space("image").positions == row)[0])
    assert np.allclose(vectors["image"], spaces.space("image").vectors[image_row], atol=1e-4)
    assert np.allclose(vectors[FUSED], spaces.space(FUSED).vectors[row], atol=1e-4)


def test_all_means_every_split_and_a_bad_split_is_refused(small_demo):
    assert len(records_of(small_demo, "all")) == len(small_demo.records)
    with pytest.raises(UsageError, match="Unknown split"):
        records_of(small_demo, "holdout")
