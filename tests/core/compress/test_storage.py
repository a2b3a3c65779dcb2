"""Compressed weight storage: int8 integers come back exactly, footprints and byte floors are right."""

import pytest
import torch
from torch import nn

from core.compress.storage import footprint, min_stored_bytes, quantize_int8, restore_state, stored_state
from core.fusion import FUSIONS
from tests.core.toy import toy_model, toy_sample

SAMPLES = [toy_sample(i) for i in range(4)]


@pytest.mark.parametrize("fusion", list(FUSIONS))
def test_int8_round_trip_restores_the_same_integers_and_predictions(fusion):
    quantized = quantize_int8(toy_model(fusion))
    state = stored_state(quantized, "int8")
    assert all(state[k[: -len("_scale")]].dtype == torch.int8 for k in state if k.endswith(".weight_scale"))
    reloaded = quantize_int8(toy_model(fusion, seed=7))
    restore_state(reloaded, state, "int8")
    again = stored_state(reloaded, "int8")
    assert set(again) == set(state)
    assert all(torch.equal(again[k], state[k]) for k in state)
    assert torch.equal(
        torch.from_numpy(reloaded.predict_proba(SAMPLES)), torch.from_numpy(quantized.predict_proba(SAMPLES))
    )
    # Quantisation moves probabilities only a little on this random model.
    assert abs(quantized.predict_proba(SAMPLES) - toy_model(fusion).predict_proba(SAMPLES)).max() < 0.01


def test_int8_stores_linear_weights_as_integers_with_per_channel_scales():
    model = quantize_int8(toy_model("early"))
    state = stored_state(model, "int8")
    assert state["fusion.mix.0.weight"].dtype == torch.int8
    assert state["fusion.mix.0.weight_scale"].shape == (state["fusion.mix.0.weight"].shape[0],)
    assert state["fusion.mix.0.bias"].dtype == torch.float32
    assert state["encoders.image.features.0.0.weight"].dtype == torch.float32  # convolutions stay float


def test_footprint_counts_quantised_weights_at_one_byte():
    model = toy_model("early")
    count, size = footprint(model)
    assert count == model.parameter_count()
    assert size == 4 * count
    q_count, q_size = footprint(quantize_int8(toy_model("early")))
    linears = [m for m in model.modules() if type(m) is nn.Linear]
    assert q_count == count
    # Each linear weight: 4 bytes -> 1, plus a float64 scale and an int64 zero point per output channel.
    expected = size - sum(3 * m.weight.numel() - 16 * m.out_features for m in linears)
    assert q_size == expected


def test_min_stored_bytes_matches_what_each_storage_writes():
    model = toy_model("gated")
    parts = [model.fusion, model.head, *model.encoders.values()]
    written = {s: sum(t.numel() * t.element_size() for t in stored_state(m, s).values()) for s, m in
               (("float32", model), ("float16", model), ("int8", quantize_int8(toy_model("gated"))))}
    for storage in ("float32", "float16", "int8"):
        assert min_stored_bytes(parts, storage) <= written[storage]
    assert min_stored_bytes(parts, "float16") == written["float16"]
    assert min_stored_bytes(parts, "int8") < written["float32"] / 2
