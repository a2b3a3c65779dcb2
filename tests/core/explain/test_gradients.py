"""Gradient attributions: IG completeness on every fusion, result shapes equal SHAP's,
Grad-CAM, pretrained and Hugging Face encoders, not-differentiable modalities, thread safety."""

import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from core.encoders.base import Encoder
from core.explain import EXPLAINERS, ExplainParams, Explanation, explain
from core.explain.grad_cam import _COPIES, private_copy
from core.explain.gradient_placement import overlap_matrix, spread_image
from core.explain.segmentation import SEGMENTATIONS
from core.fusion import FUSIONS, build_fusion
from core.model import MultimodalClassifier
from core.sample import DecodedSample
from tests.core.explain.builders import LeftHalfEncoder, assert_untouched, snapshot, tiny_sample
from tests.core.toy import toy_model

PARAMS = ExplainParams(
    image_segments=12, audio_time_segments=4, audio_freq_bands=2, shap_evals=80, lime_samples=60, faithfulness_steps=4
)


def attribute(model, sample, method="integrated_gradients", params=PARAMS, **changes) -> Explanation:
    """One gradient method's attributions (no quality checks), through the public entry point."""
    params = replace(params, **changes)
    return explain(model, sample, [method], params=params, quality=False)[method]


def baseline_probability(model: MultimodalClassifier, sample: DecodedSample, params: ExplainParams) -> np.ndarray:
    """f(baseline) through the model's own encoders and API, independently of Captum: the
    blurred image, a silent waveform (its log-mel is the floor everywhere) and padding
    embeddings (zeros) at every token position."""
    image, audio, text = (model.encoders[m] for m in ("image", "audio", "text"))
    blurred = SEGMENTATIONS.get("image", sample.image, image, params).baseline
    ids = text.prepare(sample.text).unsqueeze(0)
    with torch.no_grad():
        embeddings = {
            "image": image(image.prepare(blurred).unsqueeze(0)),
            "audio": audio(audio.prepare(np.zeros_like(sample.audio)).unsqueeze(0)),
            "text": text.from_embeddings(torch.zeros(1, ids.shape[1], text.embed_dim), ids),
        }
        logits = model.classify(embeddings, torch.ones(1, 3, dtype=torch.bool))
    return torch.softmax(logits, dim=-1)[0].double().numpy()


# ---------------------------------------------------------------- completeness
@pytest.mark.parametrize("fusion", list(FUSIONS))
def test_integrated_gradients_are_complete_on_every_fusion(fusion):
    model = toy_model(fusion)
    sample = tiny_sample()
    result = attribute(model, sample)
    meta = result.metadata
    assert set(result.modality_totals) == {"audio", "image", "text"} and meta["not_differentiable"] == {}
    full = model.predict_proba([sample])[0][result.target]
    base = baseline_probability(model, sample, PARAMS)[result.target]
    assert meta["full_value"] == pytest.approx(full, abs=1e-6)
    assert meta["baseline_value"] == pytest.approx(base, abs=1e-6)
    total = sum(result.modality_totals.values())
    assert total == pytest.approx(meta["attribution_sum"], abs=1e-9)
    # Completeness: the attributions sum to f(x) - f(baseline) within Captum's reported delta.
    assert abs(total - (full - base)) <= abs(meta["convergence_delta"]) + 1e-5
    assert meta["n_steps"] == 64 and meta["runtime_s"] > 0
    # And the delta itself vanishes as the integral gets finer.
    fine = attribute(model, sample, ig_steps=256)
    assert abs(fine.metadata["convergence_delta"]) < 0.005
    assert abs(fine.metadata["attribution_sum"] - (full - base)) <= abs(fine.metadata["convergence_delta"]) + 1e-5
    # Builtin encoders: every input position belongs to a segment, so segment sums are the totals.
    for m, scores in result.segment_scores.items():
        assert scores.sum() == pytest.approx(result.modality_totals[m], rel=1e-9, abs=1e-12)
    assert "unplaced" not in meta


def test_more_steps_shrink_the_convergence_delta():
    model, sample = toy_model("attention"), tiny_sample()
    few = attribute(model, sample, ig_steps=2)
    many = attribute(model, sample, ig_steps=128)
    assert abs(many.metadata["convergence_delta"]) < abs(few.metadata["convergence_delta"])
    # The same integral whatever the batching.
    batched = attribute(model, sample, ig_steps=128, gradient_batch_size=16)
    np.testing.assert_allclose(batched.segment_scores["image"], many.segment_scores["image"], atol=1e-6)


def test_steps_double_until_the_delta_is_within_tolerance():
    model, sample = toy_model("lowrank"), tiny_sample()
    result = attribute(model, sample, ig_steps=16, ig_delta_tolerance=0.01, ig_max_steps=1024)
    meta = result.metadata
    steps = [s for s, _ in meta["steps_tried"]]
    assert steps[0] == 16 and steps == [16 * 2**i for i in range(len(steps))] and len(steps) > 1
    assert meta["n_steps"] == steps[-1] and meta["evaluations"] == sum(s + 2 for s in steps)
    assert abs(meta["convergence_delta"]) <= 0.01 * abs(meta["difference"])
    assert all(abs(d) > 0.01 * abs(meta["difference"]) for _, d in meta["steps_tried"][:-1])


def test_gradient_shap_is_seeded_and_roughly_complete():
    model, sample = toy_model("gated"), tiny_sample()
    first = attribute(model, sample, "gradient_shap")
    again = attribute(model, sample, "gradient_shap")
    other = attribute(model, sample, "gradient_shap", seed=1)
    np.testing.assert_array_equal(first.segment_scores["image"], again.segment_scores["image"])
    assert not np.allclose(first.segment_scores["image"], other.segment_scores["image"])
    assert first.metadata["explainer"] == "captum.attr.GradientShap"
    assert set(first.metadata["stdevs"]) == {"audio", "image", "text"}
    assert np.isfinite(first.metadata["convergence_delta"])


# ---------------------------------------------------------------- shapes equal SHAP's
@pytest.fixture(scope="module")
def shap_result():
    return explain(toy_model("early"), tiny_sample(), "shap", params=PARAMS)["shap"]


def test_gradient_methods_are_registered():
    assert {"integrated_gradients", "gradient_shap", "grad_cam"} <= set(EXPLAINERS)
    assert EXPLAINERS["integrated_gradients"].label == "Integrated Gradients"
    assert EXPLAINERS["gradient_shap"].seeded and not EXPLAINERS["integrated_gradients"].seeded


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient_shap", "grad_cam"])
def test_results_have_the_shape_of_shap_results(shap_result, method):
    model, sample = toy_model("early"), tiny_sample()
    result = explain(model, sample, ["shap", method], params=PARAMS)[method]
    assert result.method == method and result.target == shap_result.target
    np.testing.assert_allclose(result.probabilities, shap_result.probabilities, atol=1e-6)
    assert result.image.shape == sample.image.shape[:2] == shap_result.image.shape
    modalities = {"image"} if method == "grad_cam" else {"audio", "image", "text"}
    assert set(result.segment_scores) == set(result.modality_totals) == modalities
    for m in modalities:
        assert result.segment_scores[m].shape == shap_result.segment_scores[m].shape
    if method != "grad_cam":
        assert [t for t, _ in result.tokens] == [t for t, _ in shap_result.tokens]
        assert result.audio.shape == shap_result.audio.shape
        np.testing.assert_array_equal(result.audio_times, shap_result.audio_times)
        np.testing.assert_array_equal(result.audio_freqs, shap_result.audio_freqs)
        np.testing.assert_array_equal(result.audio_spectrogram, shap_result.audio_spectrogram)
        assert result.metadata["audio_domain"] == "spectrogram"
    # The existing quality checks apply unchanged: faithfulness curves, agreement with SHAP.
    assert result.faithfulness.deletion.shape == shap_result.faithfulness.deletion.shape
    assert set(result.metadata["agreement"]["shap"]) == modalities
    back = Explanation.from_json(result.to_json())
    np.testing.assert_allclose(back.image, result.image)
    assert back.metadata["method"] == method


def test_image_map_keeps_the_total_and_covers_the_original_image():
    matrix = overlap_matrix(5, 0.0, 37.0, 37)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    grid = np.random.default_rng(0).standard_normal((16, 16))
    spread = spread_image(grid, (0.0, 0.0, 29.0, 37.0), 37, 29)
    assert spread.shape == (37, 29) and spread.sum() == pytest.approx(grid.sum())
    # A crop box leaves the pixels outside it at zero.
    cropped = spread_image(np.ones((4, 4)), (10.0, 0.0, 30.0, 20.0), 20, 40)
    assert cropped[:, :10].sum() == 0 and cropped[:, 30:].sum() == 0 and cropped.sum() == pytest.approx(16.0)


# ---------------------------------------------------------------- Grad-CAM
def test_grad_cam_reads_the_last_conv_block():
    model, sample = toy_model("early"), tiny_sample()
    result = attribute(model, sample, "grad_cam")
    assert result.metadata["layer"] == "features.2" and result.metadata["layer_grid"] == [8, 8]
    assert result.image.shape == (37, 29) and (result.image >= 0).all()
    assert result.modality_totals["image"] == pytest.approx(result.image.sum())
    assert result.tokens is None and result.audio is None
    assert set(result.metadata["not_differentiable"]) == {"audio", "text"}


def test_grad_cam_says_when_it_does_not_apply():
    model = MultimodalClassifier(
        {"image": LeftHalfEncoder()}, build_fusion("late", in_dims={"image": 3}, num_classes=2, hidden=8), ["x", "y"]
    ).eval()
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    results = explain(model, DecodedSample(image=image), ["grad_cam", "integrated_gradients"])
    cam = results["grad_cam"]
    assert "convolutional image encoder" in cam.metadata["not_applicable"]
    assert cam.image is None and cam.segment_scores == {} and cam.faithfulness is None
    # The other method is unaffected, and agreement only pairs results that have scores.
    assert results["integrated_gradients"].faithfulness is not None
    assert "agreement" not in results["integrated_gradients"].metadata
    text_only = explain(toy_model("early"), DecodedSample(text="a red cat"), "grad_cam")["grad_cam"]
    assert "explains images" in text_only.metadata["not_applicable"]
    assert text_only.probabilities.shape == (3,) and text_only.target_name in ("zero", "one", "two")


def test_private_copy_is_refreshed_after_an_in_place_change():
    encoder = toy_model("early").encoders["image"]
    first = private_copy(encoder)
    assert first.module is not encoder and private_copy(encoder) is first
    with torch.no_grad():
        encoder.head.bias.add_(1.0)
    second = private_copy(encoder)
    assert second is not first and torch.equal(second.module.head.bias, encoder.head.bias)


# ---------------------------------------------------------------- attribution semantics
def test_pixels_the_model_never_reads_get_exactly_zero():
    torch.manual_seed(0)
    fusion = build_fusion("late", in_dims={"image": 3}, num_classes=2, hidden=8)
    model = MultimodalClassifier({"image": LeftHalfEncoder()}, fusion, ["x", "y"]).eval()
    image = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    params = ExplainParams(image_segmentation="grid", image_segments=16)
    for method in ("integrated_gradients", "gradient_shap"):
        result = attribute(model, DecodedSample(image=image), method, params=params)
        assert np.abs(result.image[:, :16]).sum() > 0
        assert np.abs(result.image[:, 16:]).sum() == 0


# ---------------------------------------------------------------- not differentiable
class StatsAudioEncoder(Encoder):
    """An audio encoder with no known differentiable input form."""

    modality = "audio"
    out_dim = 4

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 4)

    def prepare(self, value):
        wav = np.asarray(value, dtype=np.float32)
        return torch.tensor([wav.mean(), wav.std()])

    def forward(self, batch):
        return self.linear(batch)


def test_not_differentiable_modalities_are_reported_and_the_others_attributed():
    torch.manual_seed(0)
    encoders = {"image": LeftHalfEncoder(), "audio": StatsAudioEncoder()}
    fusion = build_fusion("early", in_dims={m: e.out_dim for m, e in encoders.items()}, num_classes=2, hidden=8)
    mixed = MultimodalClassifier(encoders, fusion, ["x", "y"]).eval()
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    audio = tiny_sample().audio
    result = attribute(mixed, DecodedSample(image=image, audio=audio), params=ExplainParams())
    assert "no known differentiable audio input" in result.metadata["not_differentiable"]["audio"]
    assert set(result.modality_totals) == {"image"} and result.audio is None
    # The audio still takes part, held at its embedding: the prediction is the full sample's.
    np.testing.assert_allclose(result.probabilities, mixed.predict_proba([DecodedSample(image=image, audio=audio)])[0])
    nothing = attribute(mixed, DecodedSample(audio=audio), params=ExplainParams())
    assert nothing.metadata["not_applicable"].startswith("No modality of this sample can be attributed by gradients")
    assert "audio: StatsAudioEncoder has no known differentiable audio input" in nothing.metadata["not_applicable"]


def test_absent_modalities_keep_their_missing_embedding():
    model, sample = toy_model("attention"), tiny_sample()
    partial = replace(sample, text=None)
    result = attribute(model, partial)
    assert set(result.modality_totals) == {"audio", "image"} and result.tokens is None
    np.testing.assert_allclose(result.probabilities, model.predict_proba([partial])[0], atol=1e-6)


# ---------------------------------------------------------------- thread safety
def test_the_shared_model_is_never_hooked_modified_or_switched():
    model = toy_model("gated")
    before = snapshot(model)
    explain(model, tiny_sample(), ["integrated_gradients", "gradient_shap", "grad_cam"], params=PARAMS)
    assert_untouched(model, before)
    # Grad-CAM's hooks went on a private copy, which is not part of the model.
    copy = _COPIES[model.encoders["image"]].module
    assert all(copy is not module for module in model.modules())


def test_runs_under_inference_mode_and_no_grad():
    model, sample = toy_model("early"), tiny_sample()
    reference = attribute(model, sample)
    with torch.inference_mode():
        inside = attribute(model, sample)
    with torch.no_grad():
        cam = attribute(model, sample, "grad_cam")
    np.testing.assert_allclose(inside.segment_scores["image"], reference.segment_scores["image"], atol=1e-9)
    assert cam.image is not None


def test_threads_match_sequential():
    model = toy_model("early")
    samples = [tiny_sample(seed) for seed in range(4)]
    methods = ("integrated_gradients", "gradient_shap", "grad_cam")
    expected = {(i, m): attribute(model, s, m) for i, s in enumerate(samples) for m in methods}
    got: dict = {}
    errors: list = []

    def work(i: int, method: str) -> None:
        try:
            got[i, method] = attribute(model, samples[i], method)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=key) for key in expected for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for key, result in expected.items():
        for m, scores in result.segment_scores.items():
            np.testing.assert_allclose(got[key].segment_scores[m], scores, atol=1e-6, err_msg=str(key))


# ---------------------------------------------------------------- multi-task models
def test_gradients_explain_any_task_of_a_multi_task_model(multitask_demo):
    from core.checkpoints import load_checkpoint
    from core.data import load_sample
    from core.inference import predict_proba

    dataset, paths = multitask_demo
    loaded = load_checkpoint(paths["early"])
    sample = load_sample(next(r for r in dataset.split("test") if len(r.present()) == 3))
    for task in ("parity", "tags"):
        results = explain(loaded, sample, ["integrated_gradients", "grad_cam"], params=PARAMS, task=task, quality=False)
        ig, cam = results["integrated_gradients"], results["grad_cam"]
        assert ig.task == cam.task == task and ig.classes == list(loaded.model.task(task).classes)
        # f(x) is this task's probability (softmax over its block; a sigmoid per label for tags) ...
        probabilities = predict_proba(loaded.model, [sample], task=task)[0]
        assert ig.metadata["full_value"] == pytest.approx(probabilities[ig.target], abs=1e-5)
        # ... and completeness holds for it.
        total = sum(ig.modality_totals.values())
        assert abs(total - ig.metadata["difference"]) <= abs(ig.metadata["convergence_delta"]) + 1e-5
        assert cam.image is not None
