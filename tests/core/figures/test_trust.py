"""Trust figures draw what the results hold: attention per layer and head, agreement per modality."""

import numpy as np

from core.explain import explain
from core.explain.attention_maps import sample_attention
from core.figures.trust import agreement_figure, attention_figure, faithfulness_table
from tests.core.explain.builders import tiny_sample
from tests.core.toy import FAST, toy_model


def test_attention_figure_has_a_panel_per_layer_and_head_plus_their_mean():
    model = toy_model("attention")
    maps = sample_attention(model, tiny_sample())
    fig = attention_figure(maps)
    layers, heads = model.fusion.layers, model.fusion.heads
    assert len(fig.data) == layers * (heads + 1)
    np.testing.assert_allclose(fig.data[heads].z, maps.weights[0].mean(axis=0))
    assert list(fig.data[0].x) == ["[CLS]", "audio", "image", "text"]
    assert "this sample" in fig.layout.title.text


def test_agreement_figure_and_faithfulness_table():
    results = explain(toy_model("early"), tiny_sample(), ["shap", "integrated_gradients", "grad_cam"], params=FAST)
    fig = agreement_figure(results, {"shap": "SHAP", "integrated_gradients": "IG", "grad_cam": "Grad-CAM"})
    assert [a.text for a in fig.layout.annotations] == ["audio", "image", "text"]
    audio, image, _ = (np.asarray(trace.z, dtype=float) for trace in fig.data)
    assert list(fig.data[0].y) == ["SHAP", "IG", "Grad-CAM"]
    # Grad-CAM scores the image only: its audio row is empty, its image row filled.
    assert np.isnan(audio[2]).all() and np.isfinite(image[2]).all()
    assert image[0, 1] == results["shap"].metadata["agreement"]["integrated_gradients"]["image"]
    table = faithfulness_table(results)
    assert list(table["method"]) == ["shap", "integrated_gradients", "grad_cam"]
    assert (table["deletion AUC (lower is better)"] >= 0).all()
