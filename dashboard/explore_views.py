"""Widgets and renderers of the Explore page: browser filters, sample pages, neighbours, retrieval hits.

Filters become a :class:`core.explore.BrowseQuery`; core filters, sorts and pages the table,
and only the page's rows are drawn (their media read here, nothing else).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from core.data import Dataset, Record
from core.explore import BrowsePage, BrowseQuery, NeighborReport, RetrievalResult, SplitTable, browse
from core.explore.browse import DISAGREE, confidence_column, correct_column, prediction_column
from core.io import encode_wav, read_file
from dashboard.links import open_in_explain, open_in_predict
from dashboard.markup import escape_markdown
from dashboard.renderers import render_record_card
from dashboard.state import KEEP, CurrentSample, sample_from_record, set_current_sample

PAGE_SIZES = (12, 24, 48, 96)
EXPLORE_TAB = "explore_tab"
TABS = ("Browse", "Projector", "Neighbours", "Retrieval")
SELECTED_IDS = "explore_selected_ids"
"""Record ids selected on the projector's map (a lasso or box), shown in the browser."""
CARD_WIDTH = 330
"""Pixels per card of the browser's grid: the grid wraps them, as many per row as fit."""
ACTIONS = ("Predict", "Explain", "Similar")
PENDING_ACTION = "explore_pending_action"
"""(action, record id) picked on a card: Predict and Explain open their page when the browser runs next."""


def _widget_key(key: str, column: str) -> str:
    return f"{key}_{''.join(ch if ch.isalnum() else '_' for ch in column)}"


def _column_filter(table: SplitTable, column: str, key: str, query: BrowseQuery, container) -> None:
    """One widget filtering ``column``, chosen by what the column holds."""
    info = table.columns[column]
    widget = _widget_key(key, column)
    if info.kind == "category":
        picked = container.multiselect(column, info.values, key=widget, persist_state=KEEP, placeholder="any")
        if picked:
            # Values are compared as shown (strings); the frame's own values are what isin needs.
            values = table.frame[column]
            query.equals[column] = list(values[values.astype(str).isin(picked)].unique())
    elif info.kind == "bool":
        choice = container.segmented_control(column, ["yes", "no"], key=widget, persist_state=KEEP)
        if choice:
            query.equals[column] = [choice == "yes"]
    elif info.kind == "number" and info.low is not None and info.high is not None and info.high > info.low:
        _fit_kept_range(widget, info.low, info.high)
        low, high = container.slider(column, info.low, info.high, (info.low, info.high), key=widget, persist_state=KEEP)
        if (low, high) != (info.low, info.high):
            query.ranges[column] = [low, high]
    elif info.kind in ("text", "category"):
        needle = container.text_input(column, key=widget, persist_state=KEEP, placeholder="contains…")
        if needle.strip():
            query.contains[column] = needle.strip()


def _fit_kept_range(widget: str, low: float, high: float) -> None:
    """Fit a range slider's kept value into the column's ``[low, high]`` before it is drawn: the
    range follows the split, and a value narrowed on another split would lie outside it. Clamped
    where the two overlap, the whole range where they do not."""
    kept = st.session_state.get(widget)
    if kept is None:
        return
    start, end = max(kept[0], low), min(kept[1], high)
    fitted = (start, end) if start <= end else (low, high)
    if fitted != tuple(kept):
        st.session_state[widget] = fitted


def browse_controls(table: SplitTable, key: str) -> BrowseQuery:
    """The browser's filter, sort and paging widgets; returns the query they describe."""
    query = BrowseQuery()
    top = st.columns([2, 2, 2, 2])
    labels = top[0].multiselect("Label", table.columns["label"].values, key=f"{key}_label", persist_state=KEEP, placeholder="any")
    if labels:
        query.equals["label"] = labels
    patterns = top[1].multiselect(
        "Modalities", table.columns["modalities"].values, key=f"{key}_modalities", persist_state=KEEP, placeholder="any",
        help="Which modalities a sample has (its presence pattern).",
    )  # fmt: skip
    if patterns:
        query.equals["modalities"] = patterns
    text = top[2].text_input("Text contains", key=f"{key}_text", persist_state=KEEP, placeholder="e.g. odd")
    if text.strip():
        query.contains["text"] = text.strip()
    if table.split == "all":
        splits = top[3].multiselect("Split", table.columns["split"].values, key=f"{key}_split", persist_state=KEEP, placeholder="any")
        if splits:
            query.equals["split"] = splits
    elif len(table.checkpoints) > 1:
        choice = top[3].segmented_control("Checkpoints", ["disagree", "agree"], key=f"{key}_disagree", persist_state=KEEP)
        if choice:
            query.equals[DISAGREE] = [choice == "disagree"]
    if table.checkpoints:
        cols = st.columns([2, 2, 2, 2])
        first = table.checkpoints[0]
        predicted = cols[0].multiselect(
            f"{first} predicts", table.columns[prediction_column(first)].values, key=f"{key}_pred", persist_state=KEEP, placeholder="any"
        )
        if predicted:
            query.equals[prediction_column(first)] = predicted
        verdict = cols[1].segmented_control(f"{first} is", ["right", "wrong"], key=f"{key}_correct", persist_state=KEEP)
        if verdict:
            query.equals[correct_column(first)] = [verdict == "right"]
        low, high = cols[2].slider(f"{first} confidence", 0.0, 1.0, (0.0, 1.0), 0.01, key=f"{key}_conf", persist_state=KEEP)
        if (low, high) != (0.0, 1.0):
            query.ranges[confidence_column(first)] = [low, high]
    others = [c for c in table.columns if c not in ("label", "modalities", "text", "id", "split")]
    more = st.multiselect(
        "More filters", others, key=f"{key}_more", persist_state=KEEP, placeholder="metadata columns, other checkpoints' predictions…",
        help="Add a filter on any column: metadata from the manifest, or a checkpoint's prediction, confidence or correctness.",
    )  # fmt: skip
    if more:
        extra = st.columns(min(4, len(more)))
        for n, column in enumerate(more):
            _column_filter(table, column, key, query, extra[n % len(extra)])
    sort = st.columns([2, 1, 1, 1])
    sortable = ["(manifest order)", *[c for c in table.frame.columns if c != "position"]]
    by = sort[0].selectbox("Sort by", sortable, key=f"{key}_sort", persist_state=KEEP)
    query.sort_by = "" if by == sortable[0] else by
    query.descending = sort[1].toggle("Descending", key=f"{key}_desc", persist_state=KEEP)
    query.page_size = sort[2].selectbox("Per page", PAGE_SIZES, index=1, key=f"{key}_size", persist_state=KEEP)
    view = sort[3].segmented_control("View", ["Grid", "Table"], default="Grid", key=f"{key}_view", persist_state=KEEP)
    st.session_state[f"{key}_view_now"] = view or "Grid"
    return query


def _set_page(number_key: str, value: int) -> None:
    st.session_state[number_key] = value


def page_navigation(page: BrowsePage, key: str) -> None:
    """Previous / next buttons and the page number (the number widget holds the page)."""
    cols = st.columns([1, 1, 1, 4], vertical_alignment="bottom")
    number_key = f"{key}_page"
    st.session_state[number_key] = page.page  # core clamps a page past the end (after a filter change)
    cols[0].button(
        "Previous", key=f"{key}_prev", disabled=page.page <= 1, icon=":material/chevron_left:",
        on_click=_set_page, args=(number_key, page.page - 1),
    )  # fmt: skip
    cols[1].button(
        "Next", key=f"{key}_next", disabled=page.page >= page.pages, icon=":material/chevron_right:",
        on_click=_set_page, args=(number_key, page.page + 1),
    )  # fmt: skip
    cols[2].number_input("Page", 1, page.pages, key=number_key, persist_state=KEEP)
    first = (page.page - 1) * page.page_size + 1 if page.total else 0
    cols[3].caption(
        f"Samples {first:,}–{first + len(page.rows) - 1:,} of **{page.total:,}** matching · page {page.page} of {page.pages}"
    )


def requested_page(key: str, query: BrowseQuery) -> int:
    """The page to show: the page widget's value, or 1 when the filters or the sort changed."""
    filters = json.dumps({**query.to_json(), "page": 0}, sort_keys=True, default=str)
    if st.session_state.get(f"{key}_filters") != filters:
        st.session_state[f"{key}_filters"] = filters
        return 1
    return int(st.session_state.get(f"{key}_page", 1))


def _prediction_note(row: Mapping[str, Any], checkpoints: Sequence[str]) -> str:
    """What the checkpoints predict: once when they agree, one by one when they do not."""
    if not checkpoints:
        return ""
    predictions = {name: row[prediction_column(name)] for name in checkpoints}
    confidences = [row[confidence_column(name)] for name in checkpoints]
    if len(set(predictions.values())) == 1:
        mark = ":green[✓]" if row[correct_column(checkpoints[0])] else ":red[✗]"
        who = checkpoints[0] if len(checkpoints) == 1 else f"all {len(checkpoints)}"
        spread = f"{min(confidences):.2f}" if len(checkpoints) == 1 else f"{min(confidences):.2f}–{max(confidences):.2f}"
        return f"{escape_markdown(who)} → **{escape_markdown(predictions[checkpoints[0]])}** {mark} ({spread})"
    return " · ".join(
        f"{escape_markdown(name)} → **{escape_markdown(predicted)}** {':green[✓]' if row[correct_column(name)] else ':red[✗]'}"
        for name, predicted in predictions.items()
    )


def sample_actions(dataset: Dataset, record: Record, key: str) -> None:
    """Open a record on Predict, on Explain, or as the Neighbours query (one widget: a page of
    cards stays light to redraw)."""
    widget = f"{key}_open"
    st.segmented_control(
        "Open", ACTIONS, key=widget, label_visibility="collapsed", width="stretch",
        on_change=_choose_action, args=(widget, dataset, record.id),
        help="Predict or Explain: open this sample on that page. Similar: its nearest neighbours (Neighbours tab).",
    )  # fmt: skip


def open_pending_action(dataset: Dataset, explain_checkpoint: str | None) -> None:
    """Open the page a card asked for (Predict or Explain), if one did, before anything is drawn."""
    pending = st.session_state.pop(PENDING_ACTION, None)
    if pending is None:
        return
    action, record_id = pending
    if action == "Predict":
        open_in_predict(dataset, record_id)
    open_in_explain(dataset, record_id, explain_checkpoint)


def _choose_action(widget: str, dataset: Dataset, record_id: str) -> None:
    """The card's choice, acted on: the control is cleared so that it works again next time."""
    action = st.session_state.get(widget)
    st.session_state[widget] = None
    if action == "Similar":
        set_current_sample(sample_from_record(dataset, record_id))
        st.session_state[EXPLORE_TAB] = "Neighbours"
    elif action in ACTIONS:  # pages cannot be switched from a callback: the browser does it next
        st.session_state[PENDING_ACTION] = (action, record_id)


def render_grid(page: BrowsePage, table: SplitTable, dataset: Dataset, key: str) -> None:
    """The page's samples as cards (media, label, predictions and actions), wrapped in rows."""
    with st.container(horizontal=True, gap="small"):
        for values in page.rows.to_dict("records"):
            record = table.records[int(values["position"])]
            card = render_record_card(record, dataset.limits, _prediction_note(values, table.checkpoints), width=CARD_WIDTH)
            with card:
                sample_actions(dataset, record, f"{key}_{record.id}")


def _thumbnail(record: Record, dataset: Dataset) -> str | None:
    if record.image is None:
        return None
    data = read_file(record.image, dataset.limits)
    kind = record.image.suffix.lower().lstrip(".").replace("jpg", "jpeg")
    return f"data:image/{kind};base64,{base64.b64encode(data).decode()}"


def render_table(page: BrowsePage, table: SplitTable, dataset: Dataset, key: str) -> None:
    """The page as a table with image thumbnails; a selected row gets the sample actions."""
    frame = page.rows.drop(columns=["position"]).copy()
    frame.insert(0, "image", [_thumbnail(table.records[int(p)], dataset) for p in page.rows["position"]])
    config = {"image": st.column_config.ImageColumn("image", width="small")}
    for name in table.checkpoints:
        config[confidence_column(name)] = st.column_config.ProgressColumn(format="%.2f", min_value=0.0, max_value=1.0)
    event = st.dataframe(
        frame, hide_index=True, column_config=config, on_select="rerun", selection_mode="single-row", key=f"{key}_table", row_height=48
    )
    chosen = event.selection.rows if event is not None else []
    if not chosen:
        st.caption("Select a row to play its audio or open it on Predict or Explain.")
        return
    record = table.records[int(page.rows.iloc[chosen[0]]["position"])]
    left, right = st.columns([1, 2])
    with left:
        render_record_card(record, dataset.limits)
    with right:
        sample_actions(dataset, record, f"{key}_row")


def render_browser(table: SplitTable, query: BrowseQuery, dataset: Dataset, key: str, explain_checkpoint: str | None) -> None:
    """The page of ``table`` that ``query`` and the page widgets under ``key`` ask for, with its
    navigation; or the page a card asked for (``explain_checkpoint``: the one Explain opens on)."""
    open_pending_action(dataset, explain_checkpoint)
    query.page = requested_page(key, query)
    page = browse(table, query)
    page_navigation(page, key)
    render_page(page, table, dataset, key)


def render_page(page: BrowsePage, table: SplitTable, dataset: Dataset, key: str) -> None:
    if not page.total:
        st.info("No sample matches these filters.", icon=":material/filter_alt_off:")
        return
    if st.session_state.get(f"{key}_view_now", "Grid") == "Table":
        render_table(page, table, dataset, key)
    else:
        render_grid(page, table, dataset, key)


def render_query(sample: CurrentSample, sentence: str) -> None:
    """The current sample as a compact card (what is searched for), with ``sentence`` beside it."""
    card, text = st.columns([1, 3])
    text.markdown(sentence)
    with card, st.container(border=True):
        st.markdown(f"**Query** · {escape_markdown(sample.description)}")
        if sample.image_bytes is not None:
            st.image(sample.image_bytes, width=120)
        elif sample.decoded.image is not None:
            st.image(sample.decoded.image, width=120)
        if sample.decoded.text is not None:
            st.caption(escape_markdown(sample.decoded.text))
        if sample.decoded.audio is not None:
            st.audio(encode_wav(sample.decoded.audio), format="audio/wav")


def render_neighbors(report: NeighborReport, dataset: Dataset, records: dict[str, Record], key: str) -> None:
    """Each space's nearest records as a row of cards (distance in the note), then the nearest of another class."""
    for space in report.spaces:
        st.markdown(f"**{space.space}** · {space.note}")
        cards = [*space.neighbors, *([space.other_class] if space.other_class else [])]
        for n, (col, neighbor) in enumerate(zip(st.columns(len(cards) or 1), cards, strict=False)):
            is_other = space.other_class is not None and n == len(cards) - 1
            note = f"distance {neighbor.distance:.3f} · rank {neighbor.rank}"
            if is_other:
                note = f":orange[nearest of another class] · {note}"
            with col:
                render_record_card(records[neighbor.id], dataset.limits, note)


def render_hits(result: RetrievalResult, dataset: Dataset, records: dict[str, Record]) -> None:
    """Retrieved records as cards, best first, with their similarity."""
    for start in range(0, len(result.hits), 5):
        for col, hit in zip(st.columns(5), result.hits[start : start + 5], strict=False):
            with col:
                render_record_card(records[hit.id], dataset.limits, f"#{hit.rank} · similarity {hit.similarity:.3f}")
