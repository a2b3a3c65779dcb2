"""Modality Shapley axioms, SHAP/LIME shapes and sanity, engine batching, safety and threads."""

import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from core.encoders.image_cnn import BuiltinImageEncoder
from core.errors import Cancelled
from core.explain import (
    ExplainParams,
    Explanation,
    PerturbationEngine,
    agreement,
    explain,
)
from core.explain.modality_shapley import shapley_from_values
from core.fusion import build_fusion
from core.model import MultimodalClassifier
from core.sample import DecodedSample
from tests.core.explain.builders import LeftHalfEncoder
from tests.core.toy import FAST, toy_model, toy_sample


@pytest.fixture(scope="module")
def model():
    return toy_model()


# ---------------------------------------------------------------- modality Shapley
def test_shapley_efficiency_symmetry_dummy_on_constructed_games():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((5, 8))
    phi, _ = shapley_from_values(values)
    np.testing.assert_allclose(phi.sum(-1), values[:, -1] - values[:, 0], atol=1e-12)
    # Players 0 and 1 symmetric, player 2 a dummy: v(S) = g(|S & {0,1}|).
    g = {0: 0.1, 1: 0.5, 2: 0.7}
    game = np.array([g[(c & 1) + (c >> 1 & 1)] for c in range(8)])
    phi, interactions = shapley_from_values(game)
    assert phi[0] == pytest.approx(phi[1])
    assert phi[2] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(interactions[2], 0.0, atol=1e-12)
    assert interactions[0, 1] == pytest.approx(0.7 - 0.5 - 0.5 + 0.1)


def test_interactions_of_an_additive_game_are_zero():
    weights = np.array([0.3, -0.2, 0.9])
    game = np.array([0.05 + sum(weights[i] for i in range(3) if c >> i & 1) for c in range(8)])
    phi, interactions = shapley_from_values(game)
    np.testing.assert_allclose(phi, weights, atol=1e-12)
    np.testing.assert_allclose(interactions, 0.0, atol=1e-12)


@pytest.mark.parametrize("fusion", ["late", "attention", "tensor"])
def test_modality_shapley_efficiency_is_exact(fusion):
    result = explain(toy_model(fusion), toy_sample(), "modality", params=FAST)["modality"]
    meta = result.metadata
    total = sum(result.modality_totals.values())
    assert total == pytest.approx(meta["full_value"] - meta["empty_value"], abs=1e-12)
    assert meta["full_value"] == pytest.approx(result.probabilities[result.target], abs=1e-6)
    assert result.interactions.shape == (3, 3)
    np.testing.assert_allclose(result.interactions, result.interactions.T)
    assert meta["evaluations"] == 8


def test_modality_shapley_only_plays_present_modalities(model):
    sample = toy_sample()
    sample.audio = None
    result = explain(model, sample, "modality", target="two", params=FAST)["modality"]
    assert set(result.modality_totals) == {"image", "text"}
    assert result.target == 2 and result.target_name == "two"


# ---------------------------------------------------------------- SHAP / LIME shapes
@pytest.fixture(scope="module")
def both(model):
    return explain(model, toy_sample(), "all", params=FAST)


@pytest.mark.parametrize("method", ["shap", "lime"])
def test_attribution_shapes(model, both, method):
    result = both[method]
    sample = toy_sample()
    assert result.image.shape == sample.image.shape[:2]
    assert [t for t, _ in result.tokens] == model.encoders["text"].tokenize(sample.text)
    audio = model.encoders["audio"]
    assert result.audio.shape == (audio.n_mels, audio.n_frames)
    np.testing.assert_allclose(result.audio_times, np.arange(audio.n_frames) * audio.frame_seconds)
    assert result.audio_freqs.shape == (audio.n_mels,) and np.all(np.diff(result.audio_freqs) > 0)
    assert result.faithfulness.deletion.shape == (FAST.faithfulness_steps + 1,)
    assert result.metadata["evaluations"] > 0 and result.metadata["runtime_s"] > 0
    # Agreement with every other segment-based method of the run, per modality.
    assert set(result.metadata["agreement"]) == {"shap", "lime", "integrated_gradients", "gradient_shap", "grad_cam"} - {method}
    assert set(result.metadata["agreement"]["integrated_gradients"]) == {"audio", "image", "text"}
    assert set(result.metadata["agreement"]["grad_cam"]) == {"image"}


def test_shap_values_sum_to_full_minus_all_removed(both):
    result = both["shap"]
    assert result.metadata["explainer"] == "shap.PartitionExplainer"
    total = sum(result.modality_totals.values())
    assert total == pytest.approx(result.metadata["full_value"] - result.metadata["base_value"], abs=1e-6)


def test_permutation_shap_is_efficient_too_but_calls_the_model_once_per_permutation(model, both):
    params = replace(FAST, shap_algorithm="permutation", shap_evals=300)
    result = explain(model, toy_sample(), "shap", params=params)["shap"]
    assert result.metadata["explainer"] == "shap.PermutationExplainer"
    total = sum(result.modality_totals.values())
    assert total == pytest.approx(result.metadata["full_value"] - result.metadata["base_value"], abs=1e-6)
    features = sum(len(s) for s in result.segment_scores.values())
    assert result.metadata["model_calls"] == 300 // (2 * features + 1)
    # The partition explainer expands its tree level by level: a handful of large batches.
    partition = explain(model, toy_sample(), "shap", params=replace(FAST, shap_evals=300))["shap"]
    assert partition.metadata["model_calls"] <= 2 + int(np.ceil(np.log2(features))) * 2
    assert partition.metadata["evaluations"] / partition.metadata["model_calls"] > 20


def test_json_round_trip(both):
    for result in both.values():
        back = Explanation.from_json(result.to_json())
        assert back.method == result.method and back.tokens == result.tokens
        for name in ("image", "audio", "audio_times", "interactions", "probabilities"):
            original = getattr(result, name)
            assert (original is None) == (getattr(back, name) is None)
            if original is not None:
                np.testing.assert_allclose(getattr(back, name), original)


def test_seeds_make_results_reproducible(model, both):
    again = explain(model, toy_sample(), "all", params=FAST)
    for method in ("shap", "lime"):
        for modality, scores in both[method].segment_scores.items():
            np.testing.assert_allclose(again[method].segment_scores[modality], scores, atol=1e-9)
    other = explain(model, toy_sample(), "lime", params=replace(FAST, seed=1))["lime"]
    assert not np.allclose(other.segment_scores["image"], both["lime"].segment_scores["image"])


def test_agreement_of_an_explanation_with_itself_is_one(both):
    assert agreement(both["shap"], both["shap"])["image"] == pytest.approx(1.0)


# ---------------------------------------------------------------- sanity: left half only
@pytest.mark.parametrize("method", ["shap", "shap-permutation", "lime"])
def test_left_half_model_gets_left_half_attributions(method):
    torch.manual_seed(0)
    fusion = build_fusion("late", in_dims={"image": 3}, num_classes=2, hidden=8)
    model = MultimodalClassifier({"image": LeftHalfEncoder()}, fusion, ["x", "y"]).eval()
    image = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    params = ExplainParams(image_segmentation="grid", image_segments=16, lime_samples=1000, shap_evals=100)
    # Permutation SHAP gives features that never change the output exactly zero; the partition
    # explainer spreads the credit of tree nodes its budget left unexpanded over their leaves
    # (float-level here); LIME's ridge fit leaves noise.
    tolerance = {"shap": 1e-3, "shap-permutation": 1e-9, "lime": 0.1}[method]
    if method == "shap-permutation":
        method, params = "shap", replace(params, shap_algorithm="permutation")
    result = explain(model, DecodedSample(image=image), method, params=params)[method]
    left, right = np.abs(result.image[:, :16]).sum(), np.abs(result.image[:, 16:]).sum()
    assert left > 0
    assert right <= tolerance * left


# ---------------------------------------------------------------- engine
class FailsAboveEncoder(BuiltinImageEncoder):
    """Raises an out-of-memory error for batches larger than ``limit``."""

    limit = 8

    def forward(self, batch):
        if batch.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().forward(batch)


def test_out_of_memory_halves_the_batch():
    reference = toy_model()
    fragile = toy_model()
    fragile.encoders["image"] = FailsAboveEncoder(image_size=16, channels=(8, 16), out_dim=16)
    fragile.encoders["image"].load_state_dict(reference.encoders["image"].state_dict())
    fragile.eval()
    masks = {"image": np.random.default_rng(0).integers(0, 2, (40, 12)).astype(bool)}
    engine = PerturbationEngine(fragile, toy_sample(), FAST)
    expected = PerturbationEngine(reference, toy_sample(), FAST).evaluate_masks(masks)
    np.testing.assert_allclose(engine.evaluate_masks(masks), expected, atol=1e-6)
    assert engine.batch.value <= FailsAboveEncoder.limit


def test_identical_perturbations_are_encoded_once(model):
    engine = PerturbationEngine(model, toy_sample(), FAST)
    row = np.ones(12, dtype=bool)
    row[3] = False
    engine.evaluate_masks({"image": np.stack([row, row, np.ones(12, dtype=bool), row])})
    assert engine.encoded == 1 and engine.evaluations == 4


def test_explaining_leaves_the_model_untouched():
    model = toy_model("gated")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    explain(model, toy_sample(), "all", params=FAST)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks and not module._backward_hooks
        assert not module.training


def test_cancellation_stops_early(model):
    calls = []
    cancel_after = 2

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > cancel_after

    with pytest.raises(Cancelled):
        explain(model, toy_sample(), "lime", params=ExplainParams(lime_samples=2000, batch_size=32), cancel=cancel)["lime"]
    assert len(calls) == cancel_after + 1

    event = threading.Event()
    event.set()
    with pytest.raises(Cancelled):
        explain(model, toy_sample(), "shap", params=FAST, cancel=event)["shap"]


def test_progress_is_monotone_and_ends_at_one(model):
    seen = []
    explain(model, toy_sample(), "all", params=FAST, progress=seen.append)
    assert seen[-1] == pytest.approx(1.0)
    assert all(b >= a - 1e-9 for a, b in zip(seen[:-1], seen[1:], strict=True))


def test_eight_threads_match_sequential(model):
    samples = [toy_sample(seed) for seed in range(8)]
    sequential = [explain(model, s, "all", params=FAST) for s in samples]
    concurrent = [None] * 8

    def work(i):
        concurrent[i] = explain(model, samples[i], "all", params=FAST)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seq, con in zip(sequential, concurrent, strict=True):
        for method in ("modality", "shap", "lime"):
            assert seq[method].modality_totals.keys() == con[method].modality_totals.keys()
            np.testing.assert_allclose(
                list(seq[method].modality_totals.values()), list(con[method].modality_totals.values()), atol=1e-6
            )
            for modality, scores in seq[method].segment_scores.items():
                np.testing.assert_allclose(con[method].segment_scores[modality], scores, atol=1e-6)
