"""A dataset split as one table (labels, modalities, metadata, checkpoints' predictions), filtered,
sorted and paged on the server.

The table is built once per (dataset, split, checkpoints); a query (:class:`BrowseQuery`) is
answered with numpy masks and one ``argsort`` over the matching rows, and only the requested
page is returned, so a page of a 100k-row split costs what a page of a 1k-row one does
(beyond the masks, which are vectorised).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.checkpoints import LoadedCheckpoint
from core.data import Dataset, Record
from core.embeddings import classify_embedded, embed_records
from core.encoders.cache import EmbeddingCache
from core.errors import ExploreError
from core.explore.spaces import records_of
from core.sample import MODALITIES
from core.serialization import JsonMixin

MAX_CATEGORIES = 60
"""A column with at most this many distinct values is filtered by picking values; above, by substring."""
BASE_COLUMNS = ("position", "id", "split", "label", "modalities", "text")
DISAGREE = "checkpoints disagree"


def prediction_column(checkpoint: str) -> str:
    return f"{checkpoint} · prediction"


def confidence_column(checkpoint: str) -> str:
    return f"{checkpoint} · confidence"


def correct_column(checkpoint: str) -> str:
    return f"{checkpoint} · correct"


def modality_pattern(record: Record) -> str:
    """Which modalities a record has, e.g. ``audio+text`` (the presence pattern)."""
    return "+".join(m for m in MODALITIES if getattr(record, m) is not None)


@dataclass
class SplitPredictions:
    """One checkpoint's class probabilities ``[N, C]`` for the records ``ids`` (in order)."""

    checkpoint: str
    classes: list[str]
    ids: list[str]
    probabilities: np.ndarray


def split_predictions(
    loaded: LoadedCheckpoint, dataset: Dataset, split: str, *, cache: EmbeddingCache | None = None
) -> SplitPredictions:
    """Probabilities of every record of a split (or ``all``), from the embedding store and the fusion head."""
    records = records_of(dataset, split)
    embedded = embed_records(loaded.model, records, cache=cache, limits=dataset.limits)
    return SplitPredictions(loaded.name, list(loaded.model.classes), embedded.ids, classify_embedded(loaded.model, embedded))


@dataclass
class ColumnInfo:
    """How a column can be filtered: ``kind`` is ``category`` (``values`` lists them), ``number``
    (``low``..``high``), ``bool`` or ``text`` (substring)."""

    name: str
    kind: str
    values: list = field(default_factory=list)
    low: float | None = None
    high: float | None = None


@dataclass
class SplitTable:
    """Every record of a split, one row each, in manifest order.

    Attributes:
        frame: the table; ``position`` indexes ``records``.
        records: the records (for media: images, audio).
        metadata: the frame's columns that come from the manifest's extra columns.
        checkpoints: the checkpoints whose predictions are columns.
    """

    split: str
    frame: pd.DataFrame
    records: list[Record]
    metadata: list[str]
    checkpoints: list[str]
    columns: dict[str, ColumnInfo] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)


def _metadata_column(values: list[str]) -> pd.Series:
    """Numbers when every non-empty cell is one, else the strings as they are."""
    series = pd.Series(values, dtype=object)
    filled = series[series != ""]
    numbers = pd.to_numeric(filled, errors="coerce")
    if len(filled) and numbers.notna().all():
        return pd.to_numeric(series.replace("", np.nan), errors="coerce").astype(float)
    return series.astype(str)


def _column_info(name: str, series: pd.Series) -> ColumnInfo:
    if series.dtype == bool:
        return ColumnInfo(name, "bool", [False, True])
    if pd.api.types.is_numeric_dtype(series):
        finite = series[np.isfinite(series.to_numpy(dtype=float))]
        low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
        return ColumnInfo(name, "number", low=low, high=high)
    unique = series.unique()
    if len(unique) <= MAX_CATEGORIES:
        return ColumnInfo(name, "category", sorted(str(v) for v in unique))
    return ColumnInfo(name, "text")


def split_table(dataset: Dataset, split: str, predictions: Sequence[SplitPredictions] = ()) -> SplitTable:
    """The table of a split (or ``all``) with each checkpoint's prediction, confidence and correctness.

    Raises:
        ExploreError: predictions made for other records than the split's.
    """
    records = records_of(dataset, split)
    columns: dict[str, object] = {
        "position": np.arange(len(records)),
        "id": [r.id for r in records],
        "split": [r.split for r in records],
        "label": [r.label for r in records],
        "modalities": [modality_pattern(r) for r in records],
        "text": [r.text or "" for r in records],
    }
    reserved = set(BASE_COLUMNS) | {DISAGREE}
    names = list(dict.fromkeys(name for r in records for name in r.extras))
    metadata = []
    for name in names:
        column = name if name not in reserved else f"{name} (metadata)"
        columns[column] = _metadata_column([r.extras.get(name, "") for r in records])
        metadata.append(column)
    labels = np.array(columns["label"], dtype=object)
    predicted = []
    for result in predictions:
        if result.ids != columns["id"]:
            raise ExploreError(f"The predictions of {result.checkpoint} are for other records than split {split!r}.")
        best = result.probabilities.argmax(axis=1) if len(records) else np.zeros(0, dtype=int)
        names_of = np.array(result.classes, dtype=object)[best]
        columns[prediction_column(result.checkpoint)] = names_of
        columns[confidence_column(result.checkpoint)] = result.probabilities.max(axis=1) if len(records) else []
        columns[correct_column(result.checkpoint)] = names_of == labels
        predicted.append(names_of)
    if len(predicted) > 1:
        stacked = np.stack(predicted)
        columns[DISAGREE] = (stacked != stacked[0]).any(axis=0)
    frame = pd.DataFrame(columns)
    infos = {name: _column_info(name, frame[name]) for name in frame.columns if name not in ("position", "id", "text")}
    infos["id"] = ColumnInfo("id", "text")
    infos["text"] = ColumnInfo("text", "text")
    return SplitTable(split, frame, records, metadata, [p.checkpoint for p in predictions], infos)


@dataclass
class BrowseQuery(JsonMixin):
    """What to show of a :class:`SplitTable`.

    Attributes:
        equals: column -> accepted values (labels, splits, modality patterns, predictions, categories).
        ranges: numeric column -> ``[low, high]`` (inclusive; missing values never match).
        contains: column -> case-insensitive substring.
        ids: only these records (a selection on a map), or ``None`` for all.
        sort_by: a column (empty: manifest order); ``descending`` reverses it.
        page: 1-based page number (clamped to the last page).
    """

    equals: dict[str, list] = field(default_factory=dict)
    ranges: dict[str, list[float]] = field(default_factory=dict)
    contains: dict[str, str] = field(default_factory=dict)
    ids: list[str] | None = None
    sort_by: str = ""
    descending: bool = False
    page: int = 1
    page_size: int = 24


@dataclass
class BrowsePage:
    """One page of matching rows: ``rows`` (at most ``page_size``), the number of matches and pages."""

    rows: pd.DataFrame
    total: int
    page: int
    pages: int
    page_size: int


def matching_rows(table: SplitTable, query: BrowseQuery) -> np.ndarray:
    """Positions (frame rows) of the rows that match every filter of ``query``, in manifest order."""
    frame = table.frame
    mask = np.ones(len(frame), dtype=bool)
    for column, values in query.equals.items():
        if values:
            mask &= frame[_known(table, column)].isin(list(values)).to_numpy()
    for column, bounds in query.ranges.items():
        values = frame[_known(table, column)].to_numpy(dtype=float)
        low, high = bounds
        mask &= (values >= low) & (values <= high)
    for column, needle in query.contains.items():
        if needle:
            cells = frame[_known(table, column)].astype(str).str
            mask &= cells.contains(needle, case=False, regex=False).to_numpy()
    if query.ids is not None:
        mask &= frame["id"].isin(query.ids).to_numpy()
    return np.flatnonzero(mask)


def browse(table: SplitTable, query: BrowseQuery) -> BrowsePage:
    """The page of matching rows ``query`` asks for, sorted as it asks."""
    rows = matching_rows(table, query)
    if query.sort_by:
        values = table.frame[_known(table, query.sort_by)].to_numpy()[rows]
        rows = rows[_order(values, query.descending)]
    elif query.descending:
        rows = rows[::-1]
    size = max(1, int(query.page_size))
    pages = max(1, -(-len(rows) // size))
    page = min(max(1, int(query.page)), pages)
    chosen = rows[(page - 1) * size : page * size]
    return BrowsePage(table.frame.iloc[chosen], len(rows), page, pages, size)


def _known(table: SplitTable, column: str) -> str:
    if column not in table.frame.columns:
        raise ExploreError(f"The table has no column {column!r}; columns: {', '.join(table.frame.columns)}.")
    return column


def _order(values: np.ndarray, descending: bool) -> np.ndarray:
    """A stable order of ``values``: numbers numerically (missing ones last either way), the rest as strings."""
    if values.dtype.kind in "biuf":
        numbers = values.astype(float) * (-1.0 if descending else 1.0)
        return np.argsort(np.where(np.isnan(numbers), np.inf, numbers), kind="stable")
    order = np.argsort(values.astype(str), kind="stable")
    return order[::-1] if descending else order
