"""Explanations checked against ground truth on hand-built coalition games."""

import pytest

from core.evaluate import SampleResult
from core.evaluate.ground_truth import corrupted_modality_credit

MODALITIES = ["audio", "image", "text"]


def game(audio: float, image: float, text: float, synergy: float = 0.0) -> list[float]:
    """Coalition values of an additive game plus a pure audio x image interaction."""
    weights = [audio, image, text]
    return [sum(w for i, w in enumerate(weights) if c >> i & 1) + (synergy if c & 3 == 3 else 0.0) for c in range(8)]


def row(values, present=("audio", "image", "text"), **extras) -> SampleResult:
    return SampleResult("r", "1", "1", [0.0, 1.0], True, list(present), dict(extras), coalitions=values)


def test_clean_modalities_get_more_credit_than_corrupted_or_missing_ones():
    rows = [
        row(game(0.0, 0.6, 0.1), audio_state="corrupted", image_state="clean", text_state="clean"),
        row(game(0.0, 0.4, 0.0), present=("image", "text"), audio_state="missing", image_state="clean", text_state="clean"),
        row(game(0.5, 0.1, 0.0), audio_state="clean", image_state="corrupted", text_state="missing"),
    ]
    rates = corrupted_modality_credit(rows, MODALITIES)
    # corrupted audio < image, < text; missing audio (0) < image, == text (0: not a win); corrupted image < audio;
    # missing text < audio
    assert rates.by_state["corrupted"] == {"rate": 1.0, "comparisons": 3}
    assert rates.by_state["missing"] == {"rate": pytest.approx(2 / 3), "comparisons": 3}
    assert rates.credit_rate == pytest.approx(5 / 6) and rates.comparisons == 6


def test_informative_modality_and_synergy_rows():
    rows = [
        row(game(0.05, 0.7, 0.0), information="unique-image"),
        row(game(0.3, 0.2, 0.0), information="unique-image"),
        row(game(0.02, 0.03, 0.0, synergy=0.8), information="synergy"),
        row(game(0.3, 0.2, 0.1), information="redundant"),
    ]
    rates = corrupted_modality_credit(rows, MODALITIES)
    assert rates.informative_rate == pytest.approx(3 / 4) and rates.informative_comparisons == 4
    assert rates.synergy_interaction_rate == 1.0 and rates.synergy_rows == 1
    assert rates.other_interaction_rate == 0.0


def test_the_modality_showing_the_label_is_credited_over_a_misleading_one():
    rows = [
        # the image shows the label "1", the audio another digit; text routes
        row(game(-0.2, 0.5, 0.0, synergy=0.1), information="synergy", image_label="1", audio_label="7"),
        row(game(0.4, 0.1, 0.0), information="synergy", image_label="1", audio_label="7"),
        # agreement (or one modality only) is no comparison
        row(game(0.3, 0.2, 0.0), information="redundant", image_label="1", audio_label="1"),
        row(game(0.3, 0.2, 0.0), present=("image", "text"), information="unique-image", image_label="1", audio_label=""),
    ]
    rates = corrupted_modality_credit(rows, MODALITIES)
    assert rates.conflict_rate == pytest.approx(1 / 2) and rates.conflict_comparisons == 2


def test_nothing_recorded_means_no_rates():
    assert corrupted_modality_credit([row(game(0.1, 0.2, 0.3))], MODALITIES) is None


def test_ground_truth_describes_the_primary_task_only():
    from core.evaluate import EvaluationOptions
    from core.evaluate.analysis import analyse

    rows = [row(game(0.0, 0.6, 0.1), audio_state="corrupted", image_state="clean", text_state="clean")] * 4
    options = EvaluationOptions(bootstrap=10, emap_rows=0)
    assert analyse(rows, MODALITIES, ["0", "1"], options).ground_truth is not None
    assert analyse(rows, MODALITIES, ["0", "1"], options, primary=False).ground_truth is None
