"""Stability: max-sensitivity of any method under small input noise, Captum's sensitivity_max
for the gradient methods, and how much sampling methods vary across seeds."""

import numpy as np
import pytest

from core.errors import ExplanationError
from core.explain import ExplainParams
from core.explain.input_only import InputOnlyExplainer
from core.explain.randomisation import attribution_function
from core.explain.stability import gradient_sensitivity_max, max_sensitivity, perturb_sample, seed_variation
from tests.core.explain.builders import assert_untouched, snapshot, tiny_sample
from tests.core.toy import toy_model

PARAMS = ExplainParams(image_segments=16, audio_time_segments=5, audio_freq_bands=2, shap_evals=120, lime_samples=80)


def test_perturbed_samples_stay_close_and_keep_the_text():
    sample = tiny_sample()
    noisy = perturb_sample(sample, np.random.default_rng(0))
    assert noisy.text == sample.text and noisy.image.dtype == np.uint8
    difference = noisy.image.astype(int) - sample.image.astype(int)
    assert 0 < np.abs(difference).mean() < 3
    rms = np.sqrt(np.mean(sample.audio.astype(np.float64) ** 2))
    assert np.std(noisy.audio - sample.audio) == pytest.approx(0.01 * rms, rel=0.05)


def test_max_sensitivity_of_any_method():
    model, sample = toy_model("gated"), tiny_sample()
    ig = max_sensitivity(model, sample, attribution_function("integrated_gradients", PARAMS), n_perturb=3)
    assert set(ig["per_modality"]) == {"audio", "image", "text"}
    assert all(np.isfinite(v) and v >= 0 for v in ig["per_modality"].values())
    # The control's maps are the input itself: text is not perturbed, pixels move by ~2/255.
    broken = max_sensitivity(model, sample, attribution_function(InputOnlyExplainer(), PARAMS), n_perturb=3)
    assert broken["per_modality"]["text"] == 0.0 and 0 < broken["per_modality"]["image"] < 0.1
    lime = max_sensitivity(model, sample, attribution_function("lime", PARAMS), n_perturb=2)
    assert np.isfinite(lime["max_sensitivity"]) and lime["n_perturb"] == 2


def test_captum_sensitivity_max_on_the_gradient_inputs():
    model, sample = toy_model("late"), tiny_sample()
    before = snapshot(model)
    result = gradient_sensitivity_max(model, sample, params=PARAMS, n_perturb=3)
    assert set(result["per_modality"]) == {"audio", "image", "text"}
    assert np.isfinite(result["max_sensitivity"]) and result["max_sensitivity"] > 0
    shap = gradient_sensitivity_max(model, sample, "gradient_shap", params=PARAMS, n_perturb=2)
    assert np.isfinite(shap["max_sensitivity"])
    assert_untouched(model, before)
    with pytest.raises(ExplanationError, match="supports integrated_gradients and gradient_shap"):
        gradient_sensitivity_max(model, sample, "lime")


def test_seed_variation_lime_flips_signs_at_low_sample_counts_ig_never_varies():
    model, sample = toy_model("early"), tiny_sample()
    few = seed_variation(model, sample, "lime", ExplainParams(image_segments=16, lime_samples=20), seeds=3)
    many = seed_variation(model, sample, "lime", ExplainParams(image_segments=16, lime_samples=1000), seeds=3)
    assert few["sign_flips"]["image"] > many["sign_flips"]["image"]
    assert few["rank_correlation"]["image"] < many["rank_correlation"]["image"]
    ig = seed_variation(model, sample, "integrated_gradients", PARAMS, seeds=2)
    assert ig["rank_correlation"] == pytest.approx({"audio": 1.0, "image": 1.0, "text": 1.0})
    assert ig["sign_flips"] == {"audio": 0.0, "image": 0.0, "text": 0.0}
