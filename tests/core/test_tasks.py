"""Tasks: manifest columns, targets, encodings and output blocks."""

import numpy as np
import pytest

from core.tasks import MULTI, PRIMARY, SINGLE, Task, output_slices, parse_target, task_for_column


def test_columns_name_tasks():
    assert task_for_column("label") == (PRIMARY, SINGLE)
    assert task_for_column("label:pitch") == ("pitch", SINGLE)
    assert task_for_column("labels:tags") == ("tags", MULTI)
    assert task_for_column("labelled") is None and task_for_column("image_state") is None
    for bad in ("label:", "labels: ", "label:label", "label:a b", "labels:" + "x" * 70):
        with pytest.raises(ValueError, match="task name"):
            task_for_column(bad)


def test_cells_become_targets():
    assert parse_target(SINGLE, " high ") == "high" and parse_target(SINGLE, "") is None
    assert parse_target(MULTI, "big| prime |big") == ("big", "prime")
    assert parse_target(MULTI, "-") == () and parse_target(MULTI, None) is None


def test_encoding_marks_unknown_and_unlabelled_rows():
    single = Task("pitch", SINGLE, ("high", "low"))
    y, known = single.encode(["low", None, "medium", "high"])
    assert y.tolist() == [1, -1, -1, 0] and known.tolist() == [True, False, False, True]
    multi = Task("tags", MULTI, ("big", "prime", "square"))
    y, known = multi.encode([("big", "square"), (), None, ("prime", "other")])
    assert y.tolist() == [[1, 0, 1], [0, 0, 0], [0, 0, 0], [0, 1, 0]] and known.tolist() == [True, True, False, True]
    assert multi.label_text(()) == "-" and multi.label_text(("big", "prime")) == "big|prime"


def test_probabilities_and_blocks():
    logits = np.array([[0.0, 1.0, -1.0]])
    softmax = Task("a", SINGLE, ("x", "y", "z")).probabilities(logits)
    assert softmax.sum() == pytest.approx(1.0) and softmax.argmax() == 1
    sigmoid = Task("b", MULTI, ("x", "y", "z")).probabilities(logits)
    np.testing.assert_allclose(sigmoid, 1 / (1 + np.exp(-logits)))
    slices = output_slices([Task("label", SINGLE, tuple("0123456789")), Task("pitch", SINGLE, ("high", "low"))])
    assert slices == {"label": slice(0, 10), "pitch": slice(10, 12)}


def test_class_counts_of_single_and_multi_label_tasks():
    from pathlib import Path

    from core.data.records import Dataset, Record

    rows = [("train", "low", ("big", "prime")), ("train", "high", ()), ("train", None, None), ("test", "low", ("big",))]
    records = [
        Record(row=i + 1, id=f"r{i}", label=pitch, split=split, image=None, audio=None, text="t",
               targets={"pitch": pitch, "tags": tags})
        for i, (split, pitch, tags) in enumerate(rows)
    ]  # fmt: skip
    dataset = Dataset(
        root=Path("/"), records=records, classes=["high", "low"], fingerprint="f",
        tasks=[Task("pitch", SINGLE, ("high", "low")), Task("tags", MULTI, ("big", "prime", "square"))],
    )  # fmt: skip
    assert dataset.class_counts() == {"high": 1, "low": 2}
    assert dataset.class_counts("train", "pitch") == {"high": 1, "low": 1}
    assert dataset.class_counts(task="tags") == {"big": 2, "prime": 1, "square": 0}
    assert dataset.class_counts("test", "tags") == {"big": 1, "prime": 0, "square": 0}
