"""The scale benchmark in quick mode on a tiny synthetic dataset, its data generator, and its ratios."""

from __future__ import annotations

import json

import pytest

from bench import scale
from bench.scale_data import dataset_dir, synthesize


@pytest.mark.slow
def test_quick_scale_measures_every_phase_on_a_synthetic_dataset(tmp_path):
    result = scale.run({"quick": True, "root": str(tmp_path), "dashboard": False})

    assert result["sizes"] == [scale.QUICK_SIZE] and result["ratios"] == {}
    measured = result["per_size"][str(scale.QUICK_SIZE)]
    made = json.loads((dataset_dir(tmp_path / "data", scale.QUICK_SIZE, 0) / "complete.json").read_text())
    rows = measured["rows"]
    assert rows["manifest"] == scale.QUICK_SIZE
    assert rows["invalid"] == made["invalid_rows"] >= 1, "validation finds the rows the generator broke"
    assert rows["valid"] == scale.QUICK_SIZE - rows["invalid"] == sum(rows["split"].values())
    for phase in scale.TIMED:
        assert measured[phase]["s"] > 0 and measured[phase]["cpu_percent"] is not None
    assert measured["embed_cold"]["rows"] == rows["valid"]
    assert measured["train_one_epoch"]["rows"] == rows["split"]["train"]
    assert 0 < measured["train_one_epoch"]["encoders_s"] < measured["train_one_epoch"]["s"]
    assert measured["memory"]["peak_rss_mib"] > 0
    assert (tmp_path / "runs" / f"n{scale.QUICK_SIZE}" / "checkpoints" / "early").is_dir()  # what the dashboard is shown
    json.dumps(result)  # JSON-ready


def test_a_synthetic_dataset_is_built_once_and_reused(tmp_path):
    folder = synthesize(tmp_path, 50, seed=1)
    manifest = (folder / "manifest.csv").read_text()
    stamp = (folder / "manifest.csv").stat().st_mtime_ns
    assert synthesize(tmp_path, 50, seed=1) == folder and (folder / "manifest.csv").stat().st_mtime_ns == stamp
    assert len(manifest.splitlines()) == 51
    assert synthesize(tmp_path / "again", 50, seed=1).joinpath("manifest.csv").read_text() == manifest  # seeded


def test_ratios_are_time_ratios_over_size_ratios():
    def figures(seconds: float, rss: float) -> dict:
        return {**{phase: {"s": seconds} for phase in scale.TIMED}, "memory": {"peak_rss_mib": rss}}

    per_size = {"100": figures(2.0, 500.0), "400": figures(4.0, 750.0)}
    ratios = scale.ratios(per_size, [100, 400])
    assert ratios["embed_cold"] == {"400": 0.5}  # 2x the time for 4x the rows: better than linear
    assert ratios["memory_peak_rss_mib"] == {"400": 1.5}
    assert scale.ratios({"100": figures(1.0, 1.0)}, [100]) == {}


def test_without_invalid_rows_the_dataset_validates_clean(tmp_path):
    from core.data import validate_dataset

    report = validate_dataset(synthesize(tmp_path, 400, seed=2, invalid=False))
    assert report.ok and report.n_rows == 400
    assert not validate_dataset(synthesize(tmp_path, 3000, seed=2)).ok  # the default recipe breaks some rows
