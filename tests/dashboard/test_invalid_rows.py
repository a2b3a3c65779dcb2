"""A dataset with some invalid rows opens on every page with those rows left out and listed,
and the Train page trains on the rest (``--skip-invalid``) instead of refusing it."""

from __future__ import annotations

import pytest

from core.train.runs import RunSpec
from tests.dashboard.test_pages import assert_clean, open_page

PAGES = ("overview", "predict", "compare", "explore", "explain", "train")


@pytest.fixture
def partly_broken(dashboard_env, tmp_path, monkeypatch):
    """20 good rows per split and class, plus 3 rows naming images that do not exist."""
    monkeypatch.setenv("FUSION_DATA_ROOTS", str(tmp_path))
    data = tmp_path / "pets"
    data.mkdir()
    rows = [f"{label},{split},a {label} {i}," for i in range(20) for label in ("cat", "dog") for split in ("train", "val", "test")]
    rows += [f"cat,train,a lost cat {i},images/missing{i}.png" for i in range(3)]
    (data / "manifest.csv").write_text("label,split,text,image\n" + "\n".join(rows) + "\n")
    return data.resolve()


def pick(at, data):
    at.selectbox(key="sidebar_dataset").set_value(str(data))
    at.run()
    assert_clean(at)
    return at


def test_the_overview_lists_the_rows_left_out_and_shows_the_rest(partly_broken):
    at = pick(open_page("overview"), partly_broken)
    assert any(w.value.startswith("3 problem(s) in 3 of 123 rows (first: row 121, column image") for w in at.warning), [
        w.value for w in at.warning
    ]
    assert not at.error
    problems = next(d.value for d in at.dataframe if "problem" in d.value.columns)
    assert sorted(problems["row"]) == [121, 122, 123] and problems["column"].eq("image").all()
    assert at.metric[0].value == "120"  # the records used


@pytest.mark.parametrize("name", PAGES[1:])
def test_every_page_opens_on_the_valid_rows(partly_broken, name):
    at = pick(open_page(name), partly_broken)
    assert not any("Cannot load the dataset" in e.value for e in at.error), [e.value for e in at.error]


def test_train_uses_the_valid_rows_with_skip_invalid(partly_broken):
    at = pick(open_page("train"), partly_broken)
    at.selectbox(key="train_data").set_value(str(partly_broken)).run()
    assert any("training leaves them out and uses the other 120 rows" in w.value for w in at.warning)
    assert not at.button(key="train_start").disabled
    spec = RunSpec(data=str(partly_broken), out="/x", models=("text-only",), skip_invalid=True)
    assert "--skip-invalid" in spec.command(partly_broken / "events.jsonl")
