"""``neighbors``, ``project``, ``train-retrieval`` and ``retrieve`` on the small demo."""

from __future__ import annotations

import csv
import io
import json

import pytest

from core.cli import main


@pytest.fixture
def demo_args(small_demo_files, small_checkpoints):
    return ["--checkpoint", str(small_checkpoints["early"]), "--data", str(small_demo_files.data)]


def test_neighbors_reports_label_agreement_per_space(demo_args, small_demo, capsys):
    assert main(["neighbors", *demo_args, "--k", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["query_split"], report["index_split"], report["k"]) == ("test", "train", 3)
    spaces = {s["space"]: s for s in report["spaces"]}
    assert set(spaces) == {"audio", "image", "text", "fused"}
    assert spaces["fused"]["queries"] == len(small_demo.split("test"))
    assert all(0 <= s["agreement"] <= 1 and 0 < s["chance"] < 1 for s in spaces.values())

    assert main(["neighbors", *demo_args, "--k", "3"]) == 0
    table = capsys.readouterr().out
    assert "same label" in table and "fused" in table


def test_neighbors_of_a_record_and_of_a_file(demo_args, small_demo, capsys):
    record = next(r for r in small_demo.split("test") if r.image is not None)
    assert main(["neighbors", *demo_args, "--sample", record.id, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reference_label"] == record.label and report["reference"] == "label"
    for space in report["spaces"]:
        assert len(space["neighbors"]) == 5 and space["other_class"]["label"] != record.label

    assert main(["neighbors", *demo_args, "--image", str(record.image)]) == 0
    out = capsys.readouterr().out
    assert "prediction" in out and "image:" in out and "audio:" not in out
    assert main(["neighbors", *demo_args, "--sample", "no-such-id"]) == 2
    assert main(["neighbors", *demo_args, "--k", "0"]) == 2


def test_project_writes_one_row_per_record(demo_args, small_demo, tmp_path, capsys):
    assert main(["project", *demo_args, "--space", "image", "--method", "pca"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    with_image = [r for r in small_demo.split("test") if r.image is not None]
    assert [r["id"] for r in rows] == [r.id for r in with_image]
    assert {r["label"] for r in rows} <= set(small_demo.classes) and all(float(r["x"]) == float(r["x"]) for r in rows)

    out = tmp_path / "map.json"
    assert main(["project", *demo_args, "--split", "all", "--method", "pca", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["space"] == "fused" and len(data["coords"]) == len(small_demo.records)
    assert main(["project", *demo_args, "--space", "smell"]) == 2


def test_train_retrieval_then_retrieve_and_evaluate(demo_args, small_demo, tmp_path, capsys):
    out, report = tmp_path / "retrieval", tmp_path / "report.json"
    code = main(["train-retrieval", *demo_args, "--out", str(out), "--epochs", "5", "--pairs", "audio-image", "--json", str(report)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "image → audio" in printed and "audio → image" in printed
    assert {d["query"] for d in json.loads(report.read_text())["directions"]} == {"audio", "image"}

    image = next(r for r in small_demo.split("test") if r.image is not None).image
    assert main(["retrieve", "--retrieval", str(out), "--data", str(small_demo.root), "--image", str(image), "--to", "audio", "--k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3]

    assert main(["retrieve", "--retrieval", str(out), "--data", str(small_demo.root), "--evaluate", "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "val"
    assert main(["retrieve", "--retrieval", str(out), "--data", str(small_demo.root), "--image", str(image), "--to", "text"]) == 2
    assert main(["retrieve", "--retrieval", str(tmp_path), "--data", str(small_demo.root), "--image", str(image)]) == 2
    assert capsys.readouterr().err.count("error:") == 2
