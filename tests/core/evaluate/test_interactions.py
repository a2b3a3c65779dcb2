"""Coalition values, Harsanyi dividends, modality usage and EMAP."""

import itertools

import numpy as np
import pytest
import torch

from core.embeddings import EmbeddedRecords
from core.evaluate import EvaluationOptions, SampleResult
from core.evaluate.interactions import coalition_values, emap_predictions, harsanyi_dividends, modality_usage
from core.explain.modality_shapley import coalition_outputs, shapley_from_values
from tests.core.toy import toy_model, toy_sample


def test_dividends_sum_back_to_the_coalition_values():
    values = np.random.default_rng(0).random((4, 8))
    dividends = harsanyi_dividends(values)
    for coalition in range(8):
        subsets = [t for t in range(8) if t & coalition == t]
        np.testing.assert_allclose(dividends[:, subsets].sum(axis=1), values[:, coalition])
    additive = np.array([sum(w for i, w in enumerate([0.2, 0.3, 0.1]) if c >> i & 1) for c in range(8)])
    assert np.abs(harsanyi_dividends(additive)[[3, 5, 6, 7]]).max() < 1e-12  # no interaction terms


def embedded(model, n: int = 12) -> EmbeddedRecords:
    samples = [toy_sample(seed) for seed in range(n)]
    prepared = model.prepare(samples)
    with torch.inference_mode():
        embeddings = {m: e.float() for m, e in model.embed(prepared).items()}
    labels = torch.tensor([seed % 3 for seed in range(n)])
    return EmbeddedRecords(embeddings, prepared.present, labels, [str(i) for i in range(n)])


def test_coalition_values_match_the_explainer_and_give_exact_shapley():
    model = toy_model("gated")
    data = embedded(model)
    values = coalition_values(model, data)
    probabilities, _ = coalition_outputs(model, data.embeddings, data.present, model.modalities)
    expected = probabilities[np.arange(len(data)), :, data.labels.numpy()]
    np.testing.assert_allclose(values, expected, atol=1e-6)
    phi, _ = shapley_from_values(values)
    np.testing.assert_allclose(phi.sum(axis=1), values[:, -1] - values[:, 0], atol=1e-9)


def test_usage_averages_over_rows_with_coalitions():
    values = np.random.default_rng(1).random((5, 8))
    samples = [SampleResult(str(i), "a", "a", [1.0], True, ["audio"], {}, coalitions=v.tolist()) for i, v in enumerate(values)]
    usage = modality_usage(samples + [SampleResult("x", "a", "a", [1.0], True, [], {})], ["audio", "image", "text"])
    phi, interactions = shapley_from_values(values)
    assert usage.rows == 5
    assert usage.mean_abs_shapley["image"] == pytest.approx(np.abs(phi[:, 1]).mean())
    assert usage.mean_abs_interaction["audio×text"] == pytest.approx(np.abs(interactions[:, 0, 2]).mean())


class Additive(torch.nn.Module):
    """Logits = sum over modalities of a linear map of that modality's embedding (no interaction)."""

    def __init__(self, dims: dict[str, int], classes: int):
        super().__init__()
        self.maps = torch.nn.ModuleDict({m: torch.nn.Linear(d, classes) for m, d in dims.items()})

    def forward(self, embeddings, present):
        return sum(self.maps[m](e) * present[:, i : i + 1] for i, (m, e) in enumerate(sorted(embeddings.items())))


def test_emap_reproduces_an_additive_model_and_not_an_interacting_one():
    model = toy_model("tensor", seed=3)
    data = embedded(model, n=30)
    data.present[:] = True
    options = EvaluationOptions(emap_rows=30, emap_reference=30)
    additive = Additive({m: e.shape[1] for m, e in data.embeddings.items()}, 3).requires_grad_(False)
    model.classify = lambda embeddings, present: additive(embeddings, present.float())
    rows, predictions = emap_predictions(model, data, options)
    logits = additive(data.embeddings, data.present.float()).numpy()
    assert (predictions == logits[rows].argmax(axis=1)).all(), "an additive model is its own projection"

    centre = {m: float(data.embeddings[m][:, 0].median()) for m in ("audio", "image")}

    def product(embeddings, present):  # class 0 when two modalities' centred first features agree in sign: XOR
        agree = (embeddings["audio"][:, 0] - centre["audio"]) * (embeddings["image"][:, 0] - centre["image"])
        return torch.stack([agree, -agree, torch.full_like(agree, -10.0)], dim=1)

    model.classify = product
    rows, interacting = emap_predictions(model, data, options)
    real = product(data.embeddings, data.present).argmax(axis=1).numpy()[rows]
    assert (interacting == real).mean() < 0.8, "a pure interaction has no good additive projection"


def test_emap_subsamples_rows_deterministically():
    model = toy_model("late")
    data = embedded(model, n=20)
    first = emap_predictions(model, data, EvaluationOptions(emap_rows=8, emap_reference=5, seed=4))
    again = emap_predictions(model, data, EvaluationOptions(emap_rows=8, emap_reference=5, seed=4))
    assert len(first[0]) == 8 and list(first[0]) == sorted(first[0])
    for a, b in itertools.zip_longest(first, again):
        np.testing.assert_array_equal(a, b)
