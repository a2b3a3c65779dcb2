"""Every dashboard page, driven headlessly with Streamlit's AppTest against the small demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.data import load_dataset
from core.io import encode_wav
from core.settings import PROJECT_ROOT

APP = str(PROJECT_ROOT / "dashboard" / "app.py")
PAGES = ["overview", "predict", "compare", "explain", "train"]


def open_page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if name != "overview":
        at.switch_page(f"../pages/{name}.py")
        at.run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def plotly_charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def first_file(folder: str, pattern: str) -> bytes:
    return sorted(Path(folder).glob(pattern))[0].read_bytes()


@pytest.mark.parametrize("name", PAGES)
def test_every_page_loads_on_the_demo(dashboard_env, name):
    at = open_page(name)
    assert_clean(at)
    assert at.title[0].value == name.capitalize()
    assert not at.error, [e.value for e in at.error]


def test_overview_summarises_dataset_and_checkpoints(dashboard_env):
    at = open_page("overview")
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Classes"] == "10"
    sizes = load_dataset(dashboard_env["FUSION_DEMO_DATA"]).split_sizes()
    assert metrics["Train · val · test"] == " · ".join(f"{n:,}" for n in sizes.values())  # 4,313 and 3,234 alike
    table = at.dataframe[0].value
    assert {"early", "late", "image-only"} <= set(table["checkpoint"])  # training also keeps the other baselines
    assert len(plotly_charts(at)) >= 3  # class balance, coverage, metric by strategy


OVERVIEW_BEFORE_TORCH = """
import sys
from streamlit.testing.v1 import AppTest
import dashboard.sidebar as sidebar

drawn_without_torch = []
draw_status = sidebar.render_status
def render_status():  # app.py calls it after the page
    drawn_without_torch.append("torch" not in sys.modules)
    draw_status()
sidebar.render_status = render_status
at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
assert not at.exception, [e.value for e in at.exception]
assert at.title[0].value == "Overview" and "Checkpoints" in [h.value for h in at.subheader]
assert any("Device:" in c.value for c in at.sidebar.caption)
print("page drawn without torch:", drawn_without_torch)
"""


def test_the_first_page_is_drawn_before_torch_is_imported(small_demo_env):
    """Importing torch takes 1.5 s of a 2-core server's first page. The Overview (dataset,
    checkpoint cards, gallery) needs none of it; the sidebar's device line, drawn after the
    page, imports it. A fresh interpreter, as the test process has torch already."""
    result = subprocess.run(
        [sys.executable, "-c", OVERVIEW_BEFORE_TORCH, APP],
        env={**os.environ, **small_demo_env}, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "page drawn without torch: [True]" in result.stdout, result.stdout[-2000:]


def test_upload_produces_predictions_of_every_chosen_checkpoint(dashboard_env):
    data = dashboard_env["FUSION_DEMO_DATA"]
    at = open_page("predict")
    at.file_uploader(key="predict_image").set_value(("digit.png", first_file(data, "images/*.png"), "image/png"))
    at.file_uploader(key="predict_audio").set_value(("digit.wav", first_file(data, "audio/*.wav"), "audio/wav"))
    at.text_area(key="predict_text").input("the digit after two")
    at.run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    summary = at.dataframe[0].value
    assert list(summary["checkpoint"]) == ["early", "late"]  # the fusions are chosen by default
    assert summary["confidence"].between(0, 1).all()
    assert len(plotly_charts(at)) >= 3  # probabilities, one modality bar per checkpoint, audio preview
    assert any("predicted in" in c.value for c in at.caption)


def test_the_sample_picker_lists_a_page_of_records_and_finds_the_others(dashboard_env, monkeypatch):
    """No picker holds a whole split: it lists the first few records, and typing part of an id
    (or a label) lists the matching ones; the chosen record stays chosen while the list changes."""
    from core.data import load_dataset
    from dashboard import inputs

    monkeypatch.setattr(inputs, "PICKER_OPTIONS", 5)
    test = load_dataset(dashboard_env["FUSION_DEMO_DATA"]).split("test")
    at = open_page("predict")
    at.segmented_control(key="predict_source").set_value("Dataset sample").run()
    assert_clean(at)
    picker = at.selectbox(key="predict_record")
    assert picker.options and len(picker.options) == 5
    assert any(f"The first 5 of {len(test):,} records" in c.value for c in at.caption)

    last = test[-1]
    at.text_input(key="predict_find").input(last.id).run()
    listed = at.selectbox(key="predict_record").options  # as shown: "id · label … · modalities"
    assert listed[0].startswith(f"{test[0].id} · ")  # still chosen
    assert any(option.startswith(f"{last.id} · ") for option in listed[1:])
    at.selectbox(key="predict_record").set_value(last.id).run()
    assert_clean(at)
    assert any(last.id in m.value for m in [*at.markdown, *at.caption, *at.info]), "the picked record is the sample shown"

    at.text_input(key="predict_find").input("no such record").run()
    assert at.selectbox(key="predict_record").value == last.id
    assert any("matches “no such record”" in c.value for c in at.caption)


def test_text_only_upload_notes_the_checkpoint_that_cannot_use_it(dashboard_env):
    at = open_page("predict")
    at.multiselect(key="sidebar_chosen").set_value(
        [str(Path(dashboard_env["FUSION_CHECKPOINTS"]) / n) for n in ("early", "image-only")]
    )
    at.text_area(key="predict_text").input("a multiple of three")
    at.run()
    assert_clean(at)
    assert any("image-only" in i.value and "none of which you gave" in i.value for i in at.info)
    assert list(at.dataframe[0].value["checkpoint"]) == ["early"]


@pytest.mark.parametrize(
    ("uploader", "name", "payload", "message"),
    [
        ("predict_image", "broken.png", b"\x89PNG\r\n\x1a\n this is not really a png", "not an image we can read"),
        ("predict_image", "empty.png", b"", "empty"),
        ("predict_audio", "notes.txt", b"hello, I am text pretending to be audio", "not an audio file"),
        ("predict_audio", "empty.wav", b"", "empty"),
    ],
)
def test_invalid_upload_shows_an_error_and_the_page_stays_usable(dashboard_env, uploader, name, payload, message):
    at = open_page("predict")
    at.file_uploader(key=uploader).set_value((name, payload, "application/octet-stream"))
    at.text_area(key="predict_text").input("seven")
    at.run()
    assert_clean(at)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    # the valid text still gets predictions: the summary, and every task of the demo (label and pitch)
    assert len(at.dataframe) == 2 and "pitch" in set(at.dataframe[1].value["task"])


def test_too_long_audio_is_refused_with_the_limit(dashboard_env, monkeypatch):
    monkeypatch.setenv("FUSION_MAX_AUDIO_SECONDS", "1")
    at = open_page("predict")
    at.file_uploader(key="predict_audio").set_value(("long.wav", encode_wav(np.zeros(16_000 * 3, np.float32)), "audio/wav"))
    at.run()
    assert_clean(at)
    assert any("over the 1 s limit" in e.value for e in at.error)


def metrics_table(at: AppTest):
    return next(d.value for d in at.dataframe if d.value.index.name == "Checkpoint" and "Accuracy" in d.value.columns)


def test_selecting_checkpoints_changes_the_comparison(dashboard_env):
    at = open_page("compare")
    assert_clean(at)
    assert list(metrics_table(at).index) == ["early", "late"]
    at.multiselect(key="sidebar_chosen").set_value(
        [str(Path(dashboard_env["FUSION_CHECKPOINTS"]) / n) for n in ("early", "late", "image-only")]
    )
    at.run()
    assert_clean(at)
    assert list(metrics_table(at).index) == ["early", "late", "image-only"]
    assert len(plotly_charts(at)) >= 9  # bars, slices, EMAP, usage, ROC, PR, confusion matrices, reliability, robustness


def test_compare_shows_the_verdict_slices_and_modality_use(dashboard_env):
    at = open_page("compare")
    assert_clean(at)
    verdict = " ".join(m.value for m in at.markdown)
    assert "ranks first of 2 checkpoints by accuracy" in verdict
    assert at.selectbox(key="compare_slice_column").value == "information" or at.selectbox(key="compare_slice_column").options
    slices = next(d.value for d in at.dataframe if "Slice" in d.value.columns and "Accuracy (95% CI)" in d.value.columns)
    assert len(slices) >= 2 and slices["Rows"].sum() > 0
    at.selectbox(key="compare_slice_samples").set_value(at.selectbox(key="compare_slice_samples").options[0])
    at.run()
    assert_clean(at)
    assert any(b.label == "Explain" for b in at.button), "a slice's samples open in Explain"
    assert any("Checked against the dataset's ground truth" in m.value for m in at.markdown)


def test_a_cancelled_comparison_waits_until_the_user_asks_again(dashboard_env, tmp_path, monkeypatch):
    import shutil

    from core.settings import settings

    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "cache"))  # nothing evaluated yet
    at = open_page("compare")
    assert_clean(at)
    cancel = at.button(key="compare_cancel")  # drawn while the checkpoints were evaluated
    shutil.rmtree(settings().evaluation_cache_dir)  # as if the Cancel came before they finished
    cancel.click().run()
    assert_clean(at)
    assert any("Evaluation cancelled" in i.value for i in at.info)
    assert not any(d.value.index.name == "Checkpoint" for d in at.dataframe), "nothing is evaluated after a cancel"
    at.run()  # another rerun (any widget) does not restart it either
    assert any("Evaluation cancelled" in i.value for i in at.info)
    at.button(key="compare_resume").click().run()
    assert_clean(at)
    assert list(metrics_table(at).index) == ["early", "late"]


def test_compare_refuses_a_checkpoint_trained_on_other_classes(dashboard_env, tmp_path, monkeypatch):
    other = tmp_path.resolve() / "animals"
    other.mkdir()
    rows = [f"{label},{split},a {label} {i}" for i in range(6) for label in ("cat", "dog") for split in ("train", "val", "test")]
    (other / "manifest.csv").write_text("label,split,text\n" + "\n".join(rows) + "\n")
    monkeypatch.setenv("FUSION_DATA_ROOTS", str(tmp_path))
    at = open_page("compare")
    at.selectbox(key="sidebar_dataset").set_value(str(other))
    at.run()
    assert_clean(at)
    assert any("trained on other classes" in e.value for e in at.error)


def test_missing_demo_shows_how_to_build_it(dashboard_env, monkeypatch, tmp_path):
    monkeypatch.setenv("FUSION_DEMO_DATA", str(tmp_path / "not-built"))
    at = open_page("overview")
    assert_clean(at)
    assert any("make run" in e.value for e in at.error)


def explain_dataset_sample() -> AppTest:
    """Explain on the dataset's first sample, with small LIME and SHAP settings."""
    at = open_page("explain")
    at.button(key="explain_use_record").click()
    at.run()
    # Small settings keep the test fast; the page recomputes when they change.
    at.number_input(key="explain_lime_samples").set_value(60)
    at.number_input(key="explain_shap_evals").set_value(60)
    at.run()
    return at


def test_explain_shows_every_method_and_the_trust_panel_for_a_dataset_sample(dashboard_env):
    at = explain_dataset_sample()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert [s.value for s in at.subheader] == [
        "Which modality mattered for label",  # the demo has a second task, pitch
        "Inside each modality",
        "Can these attributions be trusted?",
    ]
    assert at.multiselect(key="explain_methods").value == [
        "shap", "lime", "integrated_gradients", "gradient_shap", "grad_cam"
    ]
    timing = next(c.value for c in at.caption if "SHAP by PartitionExplainer" in c.value)
    assert "Integrated Gradients, 64 steps" in timing and "GradientSHAP, 16 draws" in timing and "Grad-CAM" in timing
    # Grad-CAM explains images only: its tiles of the sample's other modalities say so instead of
    # failing (with an image, "explains the image only"; without, that there is none).
    heading = next(m.value for m in at.markdown if m.value.startswith("Explaining **"))
    others = len([m for m in heading.rsplit("·", 1)[1].strip().split(" + ") if m != "image"])
    notes = [i.value for i in at.info if i.value.startswith("Not shown: Grad-CAM explains")]
    assert others >= 1 and len(notes) == others and not any(".." in n for n in notes)
    # Faithfulness curves + agreement heatmaps + every map; the checkpoint checks wait for a click.
    assert len(plotly_charts(at)) >= 10
    assert at.button(key="explain_assess_button")
    at.selectbox(key="explain_shap_algorithm").set_value("permutation")
    at.multiselect(key="explain_methods").set_value(["shap", "integrated_gradients"])
    at.run()
    assert_clean(at)
    assert any("SHAP by PermutationExplainer" in c.value for c in at.caption)


def test_the_method_check_runs_on_click_and_puts_its_verdicts_next_to_the_maps(dashboard_env, monkeypatch):
    """The checkpoint's method assessment (on fewer rows here than the page's, for speed): the
    button computes it, the panel ranks the methods and each map gets its randomisation verdict."""
    from dataclasses import replace

    from dashboard import trust

    small = replace(trust.ASSESSMENT, samples=4, sanity_samples=2, params=replace(trust.ASSESSMENT.params, lime_samples=60, shap_evals=60))
    monkeypatch.setattr(trust, "ASSESSMENT", small)
    at = explain_dataset_sample()
    at.button(key="explain_assess_button").click()
    at.run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    texts = [e.value for e in [*at.markdown, *at.caption, *at.info, *at.success]]
    assert any(t.startswith("Most believable on this checkpoint") for t in texts)
    assert sum("passes the randomisation check" in t for t in texts) >= 3  # next to the maps


def test_train_page_lists_every_dataset_problem(dashboard_env, tmp_path, monkeypatch):
    broken = tmp_path.resolve() / "broken"
    broken.mkdir()
    (broken / "manifest.csv").write_text("label,image,text\ncat,missing.png,\n,,hello\ndog,../escape.png,\n")
    monkeypatch.setenv("FUSION_DATA_ROOTS", str(tmp_path))
    at = open_page("train")
    at.selectbox(key="train_data").set_value(str(broken))
    at.run()
    assert_clean(at)
    issues = at.dataframe[0].value
    assert len(issues) >= 3
    assert at.button(key="train_start").disabled



def test_train_page_follows_a_run_with_its_loss_curves(dashboard_env):
    run = Path(dashboard_env["FUSION_RUNS"]) / "20260101-120000-abcd"
    run.mkdir(parents=True, exist_ok=True)
    spec = {"data": "d", "out": "o", "models": ["early"], "encoders": {}, "epochs": 2, "encoder_epochs": 2}
    (run / "run.json").write_text(
        json.dumps(
            {"id": run.name, "spec": spec, "command": [], "pid": 1, "status": "finished",
             "started_at": "2026-01-01T12:00:00+00:00", "ended_at": None, "exit_code": 0}
        )
    )  # fmt: skip
    events = [{"event": "stage", "stage": "training early fusion"}] + [
        {"event": "epoch", "model": "early", "epoch": e, "epochs": 2, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val_accuracy": 0.4 * e}
        for e in (1, 2)
    ] + [{"event": "saved", "model": "early", "path": "o/early", "metrics": {}}, {"event": "done", "results": []}]
    (run / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    at = open_page("train")
    assert_clean(at)
    assert any(run.name in e.label for e in at.expander)
    assert any("finished" in m.value for m in at.markdown)
    assert len(plotly_charts(at)) == 1


@pytest.fixture
def multitask_env(multitask_demo, monkeypatch, tmp_path):
    dataset, paths = multitask_demo
    env = {
        "FUSION_DEMO_DATA": str(dataset.root),
        "FUSION_CHECKPOINTS": str(next(iter(paths.values())).parent),
        "FUSION_CACHE_DIR": str(tmp_path / "cache"),
        "FUSION_RUNS": str(tmp_path / "runs"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return dataset, paths


def test_compare_predict_and_explain_offer_every_task(multitask_env):
    dataset, paths = multitask_env
    at = open_page("compare")
    assert_clean(at)
    picker = at.selectbox(key="compare_task")
    assert picker.options == [
        "label (single-label)",
        "pitch (single-label)",  # the demo's own second task
        "parity (single-label)",
        "tags (multi-label)",
    ]
    picker.set_value("tags")
    at.run()
    assert_clean(at)
    table = metrics_table_of(at)
    assert "Micro F1" in table.columns and "Hamming loss" in table.columns
    assert any("does not predict the task 'tags'" in e.value for e in at.error), "the single-task copy is left out"
    at.selectbox(key="compare_task").set_value("parity")
    at.run()
    assert_clean(at)
    assert any("Does sharing help or hurt?" in m.value for m in at.markdown)

    at = open_page("predict")
    at.segmented_control(key="predict_source").set_value("Dataset sample")
    at.run()
    assert_clean(at)
    every = next(d.value for d in at.dataframe if "task" in d.value.columns)
    assert set(every["task"]) == {"label", "pitch", "parity", "tags"}

    at = open_page("explain")
    at.button(key="explain_use_record").click()
    at.run()
    at.selectbox(key="explain_task").set_value("parity")
    at.run()
    assert_clean(at)
    assert at.selectbox(key="explain_target").options == ["even", "odd"]


def metrics_table_of(at: AppTest):
    return next(d.value for d in at.dataframe if d.value.index.name == "Checkpoint" and "N" in d.value.columns)
