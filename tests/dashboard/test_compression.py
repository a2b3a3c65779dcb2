"""Compression in the dashboard: started from the Train page, then picked in the sidebar and shown
on Predict, Explain and Compare beside its parent."""

from __future__ import annotations

import shutil
import time

import pytest

from core.card import read_card
from core.compress import CompressOptions, compress_checkpoint
from tests.dashboard.test_pages import assert_clean, open_page, plotly_charts


@pytest.fixture
def private_checkpoints(small_demo_env, small_checkpoints, monkeypatch, tmp_path):
    """The dashboard on a private checkpoint folder holding a copy of early and its int8 version."""
    folder = tmp_path / "checkpoints"
    shutil.copytree(small_checkpoints["early"], folder / "early")
    compress_checkpoint(folder / "early", "int8", options=CompressOptions())
    for name, value in {**small_demo_env, "FUSION_CHECKPOINTS": str(folder), "FUSION_RUNS": str(tmp_path / "runs")}.items():
        monkeypatch.setenv(name, value)
    return folder


def test_train_page_starts_a_compression_whose_checkpoint_joins_the_sidebar(private_checkpoints):
    at = open_page("train")
    assert_clean(at)
    assert "Dynamic int8 quantisation of the linear layers (CPU inference); no training" in " ".join(c.value for c in at.caption)
    at.selectbox(key="compress_checkpoint").set_value(str(private_checkpoints / "early"))
    at.selectbox(key="compress_method").set_value("distill")
    at.run()
    assert_clean(at)
    hidden = read_card(private_checkpoints / "early").fusion_config["hidden"]
    assert next(n.value for n in at.number_input if n.label == "Student width") == hidden // 2
    at.selectbox(key="compress_method").set_value("fp16")
    at.run()
    assert next(t.value for t in at.text_input if t.label == "New checkpoint") == "early-fp16"
    at.button(key="compress_start").click()
    at.run()
    assert_clean(at)
    out = private_checkpoints / "early-fp16"
    deadline = time.monotonic() + 300
    while not (out / "card.json").exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert read_card(out).compression.parent_name == "early"
    at = open_page("train")
    options = at.multiselect(key="sidebar_chosen").options
    assert any("early-fp16 · fp16 of early" in o for o in options)


def test_compressed_checkpoint_works_on_predict_explain_and_compare(private_checkpoints):
    chosen = [str(private_checkpoints / n) for n in ("early", "early-int8")]
    at = open_page("compare")
    assert at.multiselect(key="sidebar_chosen").value == [str(private_checkpoints / "early")]  # compressed: one click away
    at.multiselect(key="sidebar_chosen").set_value(chosen)
    at.run()
    assert_clean(at)
    cost = next(d.value for d in at.dataframe if "Size on disk (MB)" in d.value.columns)
    assert cost.loc["early-int8", "Compressed from"] == "early (int8)"
    assert cost.loc["early-int8", "Size on disk (MB)"] < 0.5 * cost.loc["early", "Size on disk (MB)"]
    titles = [c.proto.spec for c in plotly_charts(at)]
    assert any("Pareto front" in spec for spec in titles)
    at = open_page("predict")
    at.multiselect(key="sidebar_chosen").set_value(chosen)
    at.text_area(key="predict_text").input("the digit after two")
    at.run()
    assert_clean(at)
    assert list(at.dataframe[0].value["checkpoint"]) == ["early", "early-int8"]
    at = open_page("explain")
    at.multiselect(key="sidebar_chosen").set_value([chosen[1]])
    at.button(key="explain_use_record").click().run()
    for key in ("explain_lime_samples", "explain_shap_evals"):  # small settings keep the test fast
        at.number_input(key=key).set_value(60)
    at.run()
    assert_clean(at)
    assert [e.value for e in at.error] == [] and len(plotly_charts(at)) >= 5
