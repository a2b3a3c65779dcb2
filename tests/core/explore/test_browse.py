"""The split table: filters, sorting and paging answered by core, only the page returned."""

from __future__ import annotations

import time

import numpy as np
import pytest

from core.errors import ExploreError
from core.explore.browse import (
    DISAGREE,
    BrowseQuery,
    SplitPredictions,
    browse,
    confidence_column,
    correct_column,
    matching_rows,
    prediction_column,
    split_table,
)
from tests.core.explore.conftest import make_dataset, make_records


def predictions(records, name: str, shift: int = 0, classes=("0", "1", "2")) -> SplitPredictions:
    """One-hot-ish probabilities: record i predicted (i + shift) % 3 with confidence 0.5 + i/1000."""
    proba = np.full((len(records), len(classes)), 0.0)
    for i in range(len(records)):
        proba[i, (i + shift) % len(classes)] = 0.5 + i / 1000
        proba[i, (i + shift + 1) % len(classes)] = 0.5 - i / 1000
    return SplitPredictions(name, list(classes), [r.id for r in records], proba)


@pytest.fixture
def table():
    records = make_records(30)
    dataset = make_dataset(records)
    # "right" predicts every label; "off" is right only where (i + 1) % 3 == i % 3, i.e. never
    return split_table(dataset, "test", [predictions(records, "right"), predictions(records, "off", shift=1)])


def test_the_table_holds_labels_modalities_metadata_and_each_checkpoints_predictions(table):
    frame = table.frame
    assert len(table) == 30 and table.checkpoints == ["right", "off"]
    assert frame.loc[0, "modalities"] == "image+text" and frame.loc[1, "modalities"] == "text"
    assert table.metadata == ["snr", "voice"]
    assert frame["snr"].dtype == float and np.isnan(frame.loc[0, "snr"]) and frame.loc[3, "snr"] == 3.0
    assert frame[correct_column("right")].all() and not frame[correct_column("off")].any()
    assert frame[DISAGREE].all()
    assert frame.loc[7, confidence_column("right")] == pytest.approx(0.507)
    assert table.columns["voice"].kind == "category" and table.columns["voice"].values == ["en", "fr"]
    assert table.columns["snr"].kind == "number" and (table.columns["snr"].low, table.columns["snr"].high) == (0.0, 6.0)
    assert table.columns[correct_column("off")].kind == "bool"


def test_filters_combine_and_match_what_they_say(table):
    query = BrowseQuery(equals={"label": ["1"], "voice": ["fr"]})
    rows = table.frame.iloc[matching_rows(table, query)]
    assert list(rows["id"]) == ["r1", "r7", "r13", "r19", "r25"]

    query = BrowseQuery(ranges={"snr": [2.0, 3.0]}, contains={"text": "ODD"})
    rows = table.frame.iloc[matching_rows(table, query)]
    assert set(rows["snr"]) <= {2.0, 3.0} and all("odd" in t for t in rows["text"]) and len(rows) > 0

    query = BrowseQuery(equals={prediction_column("off"): ["2"], "modalities": ["image+text"]})
    rows = table.frame.iloc[matching_rows(table, query)]
    assert list(rows["id"]) == ["r4", "r16", "r28"]

    assert len(matching_rows(table, BrowseQuery(ids=["r3", "r5", "nope"]))) == 2
    assert len(matching_rows(table, BrowseQuery(equals={correct_column("off"): [True]}))) == 0


def test_sorting_puts_missing_numbers_last_either_way(table):
    up = browse(table, BrowseQuery(sort_by="snr", page_size=30)).rows["snr"].tolist()
    down = browse(table, BrowseQuery(sort_by="snr", descending=True, page_size=30)).rows["snr"].tolist()
    assert up[:4] == [0.0] * 4 and np.isnan(up[-1]) and down[0] == 6.0 and np.isnan(down[-1])
    by_confidence = browse(table, BrowseQuery(sort_by=confidence_column("right"), descending=True)).rows
    assert by_confidence["id"].iloc[0] == "r29"


def test_paging_returns_only_the_page_and_clamps_past_the_end(table):
    page = browse(table, BrowseQuery(page=2, page_size=12))
    assert (page.total, page.pages, page.page, len(page.rows)) == (30, 3, 2, 12)
    assert page.rows["id"].iloc[0] == "r12"
    last = browse(table, BrowseQuery(page=99, page_size=12))
    assert (last.page, len(last.rows)) == (3, 6)
    empty = browse(table, BrowseQuery(equals={"label": ["nope"]}))
    assert (empty.total, empty.pages, len(empty.rows)) == (0, 1, 0)


def test_an_unknown_column_or_mismatched_predictions_are_user_errors(table):
    with pytest.raises(ExploreError, match="no column 'colour'"):
        browse(table, BrowseQuery(sort_by="colour"))
    records = make_records(5)
    with pytest.raises(ExploreError, match="other records"):
        split_table(make_dataset(records), "test", [predictions(make_records(4), "x")])


def test_a_page_of_a_100k_row_split_is_as_cheap_as_a_page_of_a_1k_row_one():
    def timed(n: int) -> float:
        records = make_records(n)
        table = split_table(make_dataset(records), "test", [predictions(records, "a"), predictions(records, "b", 1)])
        query = BrowseQuery(equals={"label": ["1", "2"]}, contains={"text": "odd"}, sort_by=confidence_column("a"), page=3)
        started = time.perf_counter()
        for _ in range(5):
            page = browse(table, query)
        assert len(page.rows) == query.page_size
        return (time.perf_counter() - started) / 5

    small, large = timed(1_000), timed(100_000)
    # Masks over 100k rows are vectorised: tens of milliseconds, never the per-row Python work of a widget per row.
    assert large < 0.5, f"{large * 1000:.0f} ms for a page of 100k rows (1k rows: {small * 1000:.1f} ms)"
