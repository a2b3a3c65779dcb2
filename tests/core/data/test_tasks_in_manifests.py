"""Manifests with several tasks: parsed per task, validated per task, single-label datasets unchanged."""

import json
from pathlib import Path

import pytest

from core.data import load_dataset, validate_dataset
from core.tasks import MULTI, SINGLE


def write_csv(folder: Path, header: str, rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.csv").write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return folder


def test_task_columns_make_tasks_and_targets(tmp_path):
    folder = write_csv(
        tmp_path / "d",
        "label,label:pitch,labels:tags,text,split,site",
        ["1,high,prime|odd,one,train,a", "2,,even,two,train,b", "3,low,-,three,val,a", "4,low,,four,test,b"],
    )
    dataset = load_dataset(folder)
    assert [(t.name, t.kind, t.classes) for t in dataset.tasks] == [
        ("label", SINGLE, ("1", "2", "3", "4")),
        ("pitch", SINGLE, ("high", "low")),
        ("tags", MULTI, ("even", "odd", "prime")),
    ]
    records = dataset.records
    assert records[0].targets == {"label": "1", "pitch": "high", "tags": ("prime", "odd")}
    assert records[1].targets["pitch"] is None and records[2].targets["tags"] == () and records[3].targets["tags"] is None
    assert dataset.targets(records, "pitch") == ["high", None, "low", "low"]
    assert set(records[0].extras) == {"site"}, "task columns are not metadata"
    assert dataset.classes == ["1", "2", "3", "4"] and records[0].label == "1"


def test_a_manifest_without_label_uses_its_first_task(tmp_path):
    folder = tmp_path / "tags"
    folder.mkdir()
    rows = [{"labels:sounds": ["dog", "car"], "text": "woof vroom"}, {"labels:sounds": [], "text": "silence"}, {"text": "?"}]
    (folder / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    report = validate_dataset(folder)
    assert [i.format() for i in report.issues] == ["row 3: the row has no label for any task"]
    dataset = load_dataset(folder, skip_invalid=True)
    assert dataset.tasks[0].name == "sounds" and dataset.tasks[0].kind == MULTI
    assert [r.targets["sounds"] for r in dataset.records] == [("dog", "car"), ()]
    assert dataset.records[0].label is None


@pytest.mark.parametrize("column", ["label:", "labels:two words"])
def test_unusable_task_columns_are_manifest_problems(tmp_path, column):
    folder = write_csv(tmp_path / "d", f"label,{column},text", ["1,x,one"])
    report = validate_dataset(folder)
    assert report.fatal and "task name" in report.issues[0].reason
