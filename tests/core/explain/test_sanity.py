"""Sanity checks: cascading model-parameter randomisation passes for IG and SHAP on a
trained model and fails for an attribution that ignores the model; max-sensitivity."""

import numpy as np
import pytest
import torch

from core.checkpoints import load_checkpoint
from core.data import load_sample
from core.explain import ExplainParams
from core.explain.sanity import (
    attribution_function,
    cascading_randomisation,
    gradient_sensitivity_max,
    input_only_explanation,
    max_sensitivity,
    randomisation_steps,
    randomise_module_,
)
from tests.core.explain.builders import assert_untouched, snapshot, tiny_model, tiny_sample

PARAMS = ExplainParams(image_segments=16, audio_time_segments=5, audio_freq_bands=2, shap_evals=120, lime_samples=80)


@pytest.fixture(scope="module")
def trained(small_checkpoints):
    return load_checkpoint(small_checkpoints["early"]).model


@pytest.fixture(scope="module")
def samples(small_demo):
    """Six samples (test split first) with every modality and at least four words: the rank
    correlation of fewer units is mostly noise (shorter texts would not count for text)."""
    records = [r for split in ("test", "val", "train") for r in small_demo.split(split) if len(r.present()) == 3]
    decoded = (load_sample(r) for r in records)
    return [s for s in decoded if len(s.text.split()) >= 4][:6]


@pytest.fixture(scope="module")
def integrated_gradients_report(trained, samples):
    return cascading_randomisation(trained, samples, attribution_function("integrated_gradients", PARAMS))


def test_integrated_gradients_pass_the_randomisation_test(trained, integrated_gradients_report):
    report = integrated_gradients_report
    assert report.passes, report.to_dict()
    assert set(report.passed) == {"audio", "image", "text"}
    names = [step.name for step in report.steps]
    # Top first: head (early fusion has a linear head), fusion, then the encoders from
    # their last layer to their first.
    assert names[:2] == ["head", "fusion"]
    assert all(name.startswith("encoders") for name in names[2:]) and "4/4" in names[-1]
    assert "encoders.image.head" in report.steps[2].modules
    assert "encoders.text.embedding" in report.steps[-1].modules
    assert all(len(step.per_sample) == len(report.targets) == 6 for step in report.steps)


def test_shap_passes_the_randomisation_test(trained, samples):
    report = cascading_randomisation(trained, samples, attribution_function("shap", PARAMS))
    assert report.passes, report.to_dict()
    assert report.criterion == "mean"
    # Once everything is random the image and audio maps are unrelated to the trained ones.
    final = report.final_correlations()
    assert final["image"] < 0.5 and final["audio"] < 0.5


def test_an_attribution_of_the_input_alone_fails(trained, samples):
    for criterion in ("mean", "final"):
        report = cascading_randomisation(trained, samples, input_only_explanation, criterion=criterion)
        assert not report.passes
        assert report.passed == {"audio": False, "image": False, "text": False}
    for step in report.steps:
        assert all(c == pytest.approx(1.0) for c in step.correlations.values())


def test_the_trained_model_is_never_modified(trained, samples):
    before = snapshot(trained)
    cascading_randomisation(trained, samples[:1], input_only_explanation)
    cascading_randomisation(trained, samples[:1], attribution_function("grad_cam", PARAMS))
    assert_untouched(trained, before)


def test_randomisation_steps_and_the_global_rng():
    model = tiny_model("early")
    steps = randomisation_steps(model, max_encoder_steps=3)
    assert [name for name, _ in steps[:2]] == ["head", "fusion"]
    assert steps[2][1][0] == "encoders.audio.head" and steps[-1][1][-1] == "encoders.text.embedding"
    owned = {name for name, module in model.named_modules() if any(True for _ in module.parameters(recurse=False))}
    assert {name for _, names in steps for name in names} == owned
    state = torch.random.get_rng_state()
    head = model.get_submodule("head")
    weight, bias = head.weight.detach().clone(), head.bias.detach().clone()
    changed = randomise_module_(head, torch.Generator().manual_seed(0))
    assert changed == ["weight", "bias"]
    assert not torch.equal(head.weight, weight) and sorted(head.bias.tolist()) == sorted(bias.tolist())
    assert torch.equal(torch.random.get_rng_state(), state)


def test_max_sensitivity_of_any_method():
    model, sample = tiny_model("gated"), tiny_sample()
    ig = max_sensitivity(model, sample, attribution_function("integrated_gradients", PARAMS), n_perturb=3)
    assert set(ig["per_modality"]) == {"audio", "image", "text"}
    assert all(np.isfinite(v) and v >= 0 for v in ig["per_modality"].values())
    # Text is discrete and not perturbed: its IG scores move only through the other inputs.
    broken = max_sensitivity(model, sample, input_only_explanation, n_perturb=3)
    assert broken["per_modality"]["text"] == 0.0 and 0 < broken["per_modality"]["image"] < 0.1
    lime = max_sensitivity(model, sample, attribution_function("lime", PARAMS), n_perturb=2)
    assert np.isfinite(lime["max_sensitivity"])


def test_captum_sensitivity_max_on_the_gradient_inputs():
    model, sample = tiny_model("late"), tiny_sample()
    before = snapshot(model)
    result = gradient_sensitivity_max(model, sample, params=PARAMS, n_perturb=3)
    assert set(result["per_modality"]) == {"audio", "image", "text"}
    assert np.isfinite(result["max_sensitivity"]) and result["max_sensitivity"] > 0
    shap = gradient_sensitivity_max(model, sample, "gradient_shap", params=PARAMS, n_perturb=2)
    assert np.isfinite(shap["max_sensitivity"])
    assert_untouched(model, before)
