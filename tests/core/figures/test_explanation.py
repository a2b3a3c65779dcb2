"""Figures and the static PNG drawn from explanation results."""

import numpy as np
import plotly.graph_objects as go
import pytest

from core.explain import explain
from core.figures import explanation as figures
from tests.core.toy import FAST, toy_model, toy_sample


@pytest.fixture(scope="module")
def results():
    return explain(toy_model(), toy_sample(), "all", params=FAST)


def test_every_figure_builds_from_results(results):
    sample = toy_sample()
    shap_result, lime_result, modality = results["shap"], results["lime"], results["modality"]
    built = [
        figures.modality_bar(modality),
        figures.interaction_heatmap(modality),
        figures.image_overlay(shap_result, sample.image, opacity=0.3),
        figures.audio_overlay(shap_result),
        figures.faithfulness_curves([shap_result, lime_result]),
        figures.agreement_figure(shap_result, lime_result),
    ]
    assert all(isinstance(fig, go.Figure) for fig in built)
    overlay = built[2].data[1]
    assert np.asarray(overlay.z).shape == sample.image.shape[:2] and overlay.opacity == 0.3
    assert list(built[3].data[1].x) == pytest.approx(list(shap_result.audio_times))


def test_token_html_escapes_and_colours_every_token(results):
    markup = figures.token_html(results["lime"])
    assert markup.count("<span") == len(results["lime"].tokens)
    assert "rgba(" in markup


def test_methods_without_maps_say_so(results):
    with pytest.raises(ValueError):
        figures.image_overlay(results["modality"], toy_sample().image)
    with pytest.raises(ValueError):
        figures.interaction_heatmap(results["shap"])


def test_png_is_a_png(results):
    data = figures.explanation_png(list(results.values()), toy_sample().image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_modality_bars_keep_their_labels_upright_and_inside_the_plot():
    """A short bar's label went on its side or was cut (seen on Explain); labels now sit beyond
    the bars' ends, level, in room the axis range leaves for them."""
    from types import SimpleNamespace

    from core.figures.theme import labelled_bar_range

    totals = {"audio": -0.162, "image": 0.804, "text": 0.0}
    fig = figures.modality_bar(SimpleNamespace(modality_totals=totals, method="modality", target_name="4"))
    bar = fig.data[0]
    assert (bar.textposition, bar.textangle, bar.cliponaxis) == ("outside", 0, False)
    low, high = fig.layout.xaxis.range
    assert low == pytest.approx(-0.162 - 0.5 * 0.966) and high == pytest.approx(0.804 + 0.5 * 0.966)
    assert labelled_bar_range([0.2, 0.5]) == pytest.approx([0.0, 0.75])  # no room on a side without bars
    assert labelled_bar_range([-0.4]) == pytest.approx([-0.6, 0.0])
    assert labelled_bar_range([0.0, 0.0]) == pytest.approx([0.0, 0.5])
