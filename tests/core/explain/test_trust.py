"""Which method to believe: the per-checkpoint assessment, its ranking, recommendation and disk cache."""

import json
from dataclasses import replace

import numpy as np
import pytest

import core.explain.trust as trust
from core.checkpoints import load_checkpoint
from core.encoders.cache import EmbeddingCache
from core.errors import Cancelled, ExplanationError
from core.explain import ExplainParams
from core.explain.trust import (
    AssessmentOptions,
    MethodAssessment,
    ModalityAssessment,
    TrustReport,
    assess_methods,
    cached_assessment,
    rank_methods,
    trust_cache_path,
)
from core.figures import trust as figures
from core.settings import settings

OPTIONS = AssessmentOptions(
    samples=5,
    sanity_samples=3,
    params=ExplainParams(image_segments=16, audio_time_segments=5, audio_freq_bands=2, shap_evals=80, lime_samples=60),
    n_perturb=2,
    seeds=2,
    shuffled_label_epochs=10,
)


@pytest.fixture(scope="module")
def loaded(small_checkpoints):
    return load_checkpoint(small_checkpoints["early"])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("trust-cache")


@pytest.fixture(scope="module")
def report(loaded, small_demo, cache_dir, small_demo_files):
    seen: list[float] = []
    result = assess_methods(
        loaded,
        small_demo,
        OPTIONS,
        progress=seen.append,
        use_cache=False,
        cache_dir=cache_dir,
        embedding_cache=EmbeddingCache(small_demo_files.cache / "embeddings"),
    )
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    return result


def test_every_method_is_scored_on_every_modality(report, small_demo):
    assert list(report.methods) == [*trust.RANKED_METHODS, "input_only"]
    assert len(report.rows) == 5 and len(report.sanity_rows) == 3
    records = {r.id: r for r in small_demo.records}
    assert all(len(records[i].present()) == 3 and records[i].split == "test" for i in report.sanity_rows)
    assert report.dataset_fingerprint == small_demo.fingerprint and report.split == "test"
    for name, method in report.methods.items():
        expected = {"image"} if name == "grad_cam" else {"audio", "image", "text"}
        assert set(method.modalities) == expected, name
        assert method.seconds_per_explanation > 0
        for scores in method.modalities.values():
            assert scores.rows >= 1 and 0 <= scores.deletion_auc <= 1 and 0 <= scores.insertion_auc <= 1
            assert np.isfinite(scores.max_sensitivity) and scores.rank >= 1
    # Seed variation only for the sampling methods.
    assert report.methods["lime"].modalities["image"].seed_sign_flips is not None
    assert report.methods["integrated_gradients"].modalities["image"].seed_sign_flips is None
    assert report.shuffled_labels["rows"] > 0


def test_the_control_fails_both_randomisation_checks_and_is_never_recommended(report):
    control = report.methods["input_only"]
    assert control.control
    for scores in control.modalities.values():
        assert scores.model_randomisation_passed is False and scores.model_randomisation == pytest.approx(1.0)
        assert scores.data_randomisation_passed is False
    for modality, names in report.ranking.items():
        assert names[-1] == "input_only", modality
        assert report.recommendation[modality] == names[0] != "input_only"


def test_ranking_puts_failing_methods_last_and_averages_ranks():
    def scored(deletion, insertion, randomisation, sensitivity, passed=True):
        return ModalityAssessment(
            rows=1,
            deletion_auc=deletion,
            insertion_auc=insertion,
            random_deletion_auc=0.5,
            random_insertion_auc=0.5,
            model_randomisation=randomisation,
            model_randomisation_passed=passed,
            max_sensitivity=sensitivity,
        )

    methods = {
        "good": MethodAssessment("good", "Good", modalities={"image": scored(0.1, 0.9, 0.1, 0.1)}),
        "fine": MethodAssessment("fine", "Fine", modalities={"image": scored(0.2, 0.8, 0.2, 0.2)}),
        # Most faithful of all, but its maps survive the randomisation: last.
        "broken": MethodAssessment("broken", "Broken", modalities={"image": scored(0.0, 1.0, 0.9, 0.0, False)}),
    }
    assert rank_methods(methods) == {"image": ["good", "fine", "broken"]}
    assert [methods[n].modalities["image"].rank for n in ("good", "fine", "broken")] == [1, 2, 3]


def test_the_report_is_cached_on_disk_by_checkpoint_dataset_and_options(report, loaded, small_demo, cache_dir, monkeypatch):
    assert cached_assessment(loaded, small_demo, OPTIONS, cache_dir) is not None
    path = trust_cache_path(loaded.card.sha256, small_demo, OPTIONS, cache_dir)
    assert path.parent == cache_dir and json.loads(path.read_text())["sha256"] == loaded.card.sha256
    # By default the cache lives under the configured cache folder.
    assert trust_cache_path("x", small_demo, OPTIONS).parent == settings().cache_dir / "trust"
    monkeypatch.setattr(trust, "run_explainer", lambda *a, **k: pytest.fail("recomputed a cached assessment"))
    again = assess_methods(loaded, small_demo, OPTIONS, cache_dir=cache_dir)
    assert again.ranking == report.ranking and again.rows == report.rows
    assert TrustReport.from_json(report.to_json()).methods["lime"].modalities["text"].rank is not None
    other = replace(OPTIONS, samples=4)
    assert trust_cache_path(loaded.card.sha256, small_demo, other, cache_dir) != path
    assert cached_assessment(loaded, small_demo, other, cache_dir) is None
    path.write_text("{not json")
    assert cached_assessment(loaded, small_demo, OPTIONS, cache_dir) is None and not path.exists()


def test_tables_and_recommendation(report):
    ranking = figures.ranking_table(report)
    assert list(ranking["modality"]) == ["audio", "image", "text"] and ranking.loc[1, "#6"] == "Input only (broken control)"
    sanity = figures.sanity_table(report)
    assert len(sanity) == 3 * 5 + 1
    control = sanity[sanity["method"] == "Input only (broken control) (control)"]
    assert control["model randomisation"].str.startswith("FAIL").all()
    text = figures.recommendation_text(report)
    assert text.startswith("Most believable on this checkpoint: **audio**") and "broken" not in text


def test_errors_and_cancellation(loaded, small_demo, cache_dir):
    with pytest.raises(ExplanationError, match="Unknown explanation method 'nope'"):
        assess_methods(loaded, small_demo, replace(OPTIONS, methods=("nope",)), cache_dir=cache_dir)
    with pytest.raises(Cancelled):
        assess_methods(loaded, small_demo, replace(OPTIONS, samples=2), cancel=lambda: True, cache_dir=cache_dir)
