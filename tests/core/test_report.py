import re

import pytest
import torch

from core.checkpoints import save_checkpoint
from core.data import build_demo, load_dataset
from core.encoders import encoder_from_choice
from core.evaluate import EvaluationOptions, evaluate
from core.fusion import build_fusion
from core.model import MultimodalClassifier
from core.report import write_html_report


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    dataset = load_dataset(build_demo(root / "data", seed=6, progress=False, n_source=50))
    torch.manual_seed(0)
    encoders = {
        m: encoder_from_choice(m, "builtin", corpus=[r.text for r in dataset.records if r.text])
        for m in ("image", "text")
    }
    paths = []
    for name in ("early", "attention"):
        fusion = build_fusion(name, in_dims={m: 128 for m in encoders}, num_classes=len(dataset.classes), hidden=16)
        paths.append(
            save_checkpoint(MultimodalClassifier(encoders, fusion, dataset.classes), root / name, name=name)
        )
    return evaluate(paths, dataset, "test", EvaluationOptions(bootstrap=30, reliance_repeats=1, large_batch=4))


def test_report_is_self_contained_and_complete(report, tmp_path):
    path = write_html_report(report, tmp_path / "sub" / "report.html")
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", text)
    assert not re.search(r"<link[^>]*https?:", text)
    assert text.count("<script") >= 10 and "Plotly.newPlot" in text
    assert text.count("plotly.js v") == 1  # the library is inlined exactly once
    for heading in (
        "Metrics with 95% bootstrap intervals",
        "Pairwise tests",
        "ROC and precision",
        "Calibration",
        "Confusion matrices",
        "Missing modalities",
        "Robustness to corruptions",
        "Modality reliance",
        "Cost",
    ):
        assert heading in text, heading
    assert report.dataset in text and "early" in text and "attention" in text
    assert not list(path.parent.glob(".tmp-*"))


def test_report_without_robustness_skips_those_sections(report, tmp_path):
    for result in report.checkpoints:
        result.missing_modality, result.corruptions, result.reliance, result.cost = [], [], [], None
    text = write_html_report(report, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Missing modalities" not in text and "Robustness" not in text and "Metrics with 95%" in text
