"""Attention maps of the attention fusion: the reproduction equals the real forward."""

import numpy as np
import pytest
import torch
from torch import nn

import core.explain.attention_maps as attention_maps
from core.errors import ExplanationError
from core.explain.attention_maps import (
    attention_weights,
    batch_attention,
    layer_with_weights,
    sample_attention,
)
from tests.core.explain.builders import assert_untouched, snapshot, tiny_sample
from tests.core.toy import toy_model


@pytest.mark.parametrize("norm_first", [True, False])
def test_reproduced_layer_equals_the_real_layer(norm_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True, norm_first=norm_first).eval()
    x = torch.randn(5, 4, 16)
    with torch.inference_mode():
        reproduced, weights = layer_with_weights(layer, x)
        real = layer(x)
    torch.testing.assert_close(reproduced, real, atol=1e-6, rtol=1e-5)
    assert weights.shape == (5, 4, 4, 4)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(5, 4, 4))


def test_sample_attention_shape_tokens_and_exactness():
    model = toy_model("attention")
    before = snapshot(model)
    maps = sample_attention(model, tiny_sample())
    fusion = model.fusion
    assert maps.weights.shape == (fusion.layers, fusion.heads, 4, 4)
    assert maps.tokens == ["[CLS]", "audio", "image", "text"]
    np.testing.assert_allclose(maps.weights.sum(axis=-1), 1.0, atol=1e-6)
    assert maps.max_abs_error <= 1e-5
    assert maps.cls_attention.shape == (fusion.layers, fusion.heads, 4)
    assert maps.present == {"audio": 1.0, "image": 1.0, "text": 1.0}
    assert_untouched(model, before)


def test_batch_attention_is_the_mean_of_the_rows():
    model = toy_model("attention")
    samples = [tiny_sample(seed) for seed in range(5)]
    samples[1].text = None  # an absent modality still attends: as its missing embedding
    batch = model.prepare(samples)
    with torch.inference_mode():
        embeddings = model.embed(batch)
    averaged = batch_attention(model, embeddings, batch.present, batch_size=2)
    singles = [sample_attention(model, s).weights for s in samples]
    np.testing.assert_allclose(averaged.weights, np.mean(singles, axis=0), atol=1e-6)
    assert averaged.rows == 5 and averaged.present["text"] == pytest.approx(0.8)
    rows, _ = attention_weights(model, embeddings, batch.present)
    assert rows.shape == (5, model.fusion.layers, model.fusion.heads, 4, 4)


def test_a_reproduction_that_drifts_is_refused(monkeypatch):
    model = toy_model("attention")
    real = attention_maps.layer_with_weights

    def drifting(layer, x):
        out, weights = real(layer, x)
        return out + 1e-2, weights

    monkeypatch.setattr(attention_maps, "layer_with_weights", drifting)
    with pytest.raises(RuntimeError, match="layer 0"):
        sample_attention(model, tiny_sample())


def test_other_fusions_and_training_mode_are_refused():
    with pytest.raises(ExplanationError, match="attention fusion strategy, not 'gated'"):
        sample_attention(toy_model("gated"), tiny_sample())
    model = toy_model("attention").train()
    with pytest.raises(RuntimeError, match="training mode"):
        sample_attention(model, tiny_sample())


def test_split_attention_averages_the_split_from_embeddings(small_demo):
    from core.embeddings import embed_records
    from core.explain.attention_maps import split_attention

    model = toy_model("attention")
    maps = split_attention(model, small_demo, "test")
    records = small_demo.split("test")
    embedded = embed_records(model, records)
    expected = batch_attention(model, embedded.embeddings, embedded.present)
    assert maps.rows == len(records) and maps.metadata["split"] == "test"
    np.testing.assert_allclose(maps.weights, expected.weights, atol=1e-9)
    with pytest.raises(ExplanationError, match="attention fusion"):
        split_attention(toy_model("late"), small_demo)
