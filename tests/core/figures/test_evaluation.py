import json

import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from core.checkpoints import save_checkpoint
from core.data import build_demo, load_dataset
from core.encoders import encoder_from_choice
from core.evaluate import EvaluationOptions, EvaluationReport, evaluate
from core.figures import evaluation as figs
from core.figures.theme import color_for
from core.fusion import build_fusion
from core.model import MultimodalClassifier


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> EvaluationReport:
    """A report over two random-weight checkpoints, read back from its JSON text."""
    root = tmp_path_factory.mktemp("figures")
    dataset = load_dataset(build_demo(root / "data", seed=5, progress=False, n_source=60))
    torch.manual_seed(0)
    encoders = {
        m: encoder_from_choice(m, "builtin", corpus=[r.text for r in dataset.records if r.text])
        for m in ("audio", "image", "text")
    }
    paths = []
    for name in ("gated", "lowrank"):
        fusion = build_fusion(name, in_dims={m: 128 for m in encoders}, num_classes=len(dataset.classes), hidden=16)
        paths.append(
            save_checkpoint(MultimodalClassifier(encoders, fusion, dataset.classes), root / name, name=name)
        )
    options = EvaluationOptions(
        bootstrap=50, reliance_repeats=1, large_batch=4, corruptions=("image_noise", "audio_noise")
    )
    return EvaluationReport.from_json(json.dumps(evaluate(paths, dataset, "test", options).to_json()))


def test_tables_have_a_row_per_checkpoint(report):
    table = figs.metrics_table(report)
    assert list(table.index) == ["gated", "lowrank"]
    assert "(" in table.loc["gated", "Accuracy"]  # value with its interval
    floats = figs.metrics_table(report, intervals=False)
    assert floats["Accuracy"].dtype == float
    assert len(figs.pairwise_table(report)) == 1
    assert list(figs.cost_table(report).index) == ["gated", "lowrank"]
    assert figs.cost_table(report).loc["gated", "Size on disk (MB)"] > 0
    recall = figs.per_class_recall_table(report)
    first = report.checkpoints[0]
    assert list(recall.columns) == first.classes
    assert recall.loc["gated"].tolist() == [first.curves.confusion_normalized[i][i] for i in range(len(first.classes))]
    missing = figs.missing_modality_table(report)
    assert missing.shape == (7, 2) and missing.index[0] == "audio + image + text"
    assert missing.iloc[0, 0] == pytest.approx(report.checkpoints[0].metrics.values["accuracy"])


def test_every_figure_builds_from_round_tripped_results(report):
    built = [
        figs.metric_bars(report, "accuracy"),
        figs.metric_bars(report, "log_loss"),
        figs.roc_figure(report, "macro"),
        figs.pr_figure(report, "micro"),
        figs.confusion_figure(report.checkpoints[0], normalized=False),
        figs.confusion_figure(report.checkpoints[0]),
        figs.reliability_figure(report),
        figs.missing_modality_heatmap(report),
        figs.reliance_figure(report),
        *figs.robustness_figures(report).values(),
    ]
    for fig in built:
        assert isinstance(fig, go.Figure) and fig.layout.template.layout.font.family.startswith("Inter")
        fig.to_json()
    assert list(figs.robustness_figures(report)) == ["image_noise", "audio_noise"]


def test_curves_are_overlaid_per_checkpoint_in_their_colours(report):
    names = [r.name for r in report.checkpoints]
    roc = figs.roc_figure(report, "micro")
    lines = [t for t in roc.data if t.showlegend is not False]
    assert [t.name.split(" ")[0] for t in lines] == names
    assert [t.line.color for t in lines] == [color_for(n, names) for n in names]
    choices = figs.curve_choices(report)
    assert choices[:2] == ["macro", "micro"] and len(choices) > 2
    per_class = figs.pr_figure(report, choices[2])
    assert len(per_class.data) == 2


def test_bars_carry_the_bootstrap_interval(report):
    fig = figs.metric_bars(report, "accuracy")
    first = report.checkpoints[0]
    bar = fig.data[0]
    assert bar.y[0] == pytest.approx(first.metrics.values["accuracy"])
    assert bar.y[0] + bar.error_y.array[0] == pytest.approx(first.intervals["accuracy"].high)


def test_robustness_figure_starts_at_the_clean_metric(report):
    fig = figs.robustness_figure(report, "audio_noise")
    assert list(fig.layout.xaxis.ticktext)[0] == "clean"
    assert fig.data[0].y[0] == pytest.approx(report.checkpoints[0].metrics.values["accuracy"])
    assert isinstance(figs.missing_modality_table(report, "f1_macro"), pd.DataFrame)
