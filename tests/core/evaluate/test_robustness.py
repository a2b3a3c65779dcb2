"""Missing-modality table, corruption sweeps, modality reliance; corrupted inputs encoded once."""

import pytest

from core.evaluate import SWEEP_METRICS
from tests.core.evaluate.conftest import FAST


def test_missing_modality_table_has_every_subset(report):
    early = report.by_name("early")
    subsets = [tuple(r.modalities) for r in early.missing_modality]
    assert len(subsets) == 7 == len(set(subsets))
    assert subsets[0] == ("audio", "image", "text")
    assert early.missing_modality[0].values == early.metrics.values


def test_corruption_severity_zero_is_clean_and_others_change_predictions(report):
    early = report.by_name("early")
    assert [s.name for s in early.corruptions] == ["image_noise", "image_occlusion", "audio_noise", "text_dropout"]
    clean = {name: early.metrics.values[name] for name in SWEEP_METRICS}
    for sweep in early.corruptions:
        assert len(sweep.values) >= 6 and sweep.level_labels[0] == "clean"
        assert sweep.values[0] == pytest.approx(clean)
    image_noise = early.corruptions[0]
    assert any(v["log_loss"] != image_noise.values[0]["log_loss"] for v in image_noise.values[1:])
    # early ignores text: dropping words cannot change anything
    assert all(v == early.corruptions[3].values[0] for v in early.corruptions[3].values)


def test_reliance_of_an_ignored_modality_is_zero(report):
    reliance = {r.modality: r for r in report.by_name("early").reliance}
    assert reliance["text"].mean_drop == pytest.approx(0.0, abs=1e-12)
    assert len(reliance["text"].drops) == FAST.reliance_repeats


def test_corrupted_embeddings_are_shared_between_checkpoints(report, encode_calls):
    # corruptions x non-clean severities, encoded once for both checkpoints
    assert len(encode_calls) == 4 * 5
