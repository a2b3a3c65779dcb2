"""The Explore page driven headlessly (AppTest) on the small demo: filters, tabs, openers, retrieval."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from core.data import load_dataset
from core.settings import PROJECT_ROOT
from dashboard.explore_views import EXPLORE_TAB
from dashboard.state import CURRENT_SAMPLE, sample_from_record

APP = str(PROJECT_ROOT / "dashboard" / "app.py")


@pytest.fixture
def explore_env(dashboard_env, monkeypatch, tmp_path):
    monkeypatch.setenv("FUSION_RETRIEVAL", str(tmp_path / "retrieval"))
    return dashboard_env


def open_explore(tab: str | None = None, sample=None, **state) -> AppTest:
    """The Explore page, on ``tab`` (AppTest cannot click tabs; their state is set before the page runs)."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("../pages/explore.py")
    if tab is not None:
        at.session_state[EXPLORE_TAB] = tab
    if sample is not None:
        at.session_state[CURRENT_SAMPLE] = sample
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def matching(at: AppTest) -> int:
    caption = next(c.value for c in at.caption if "matching" in c.value)
    return int(re.search(r"of \*\*([\d,]+)\*\*", caption).group(1).replace(",", ""))


def card_labels(at: AppTest) -> list[str]:
    """The label of every record card on the page (a card's markdown starts with "**label** · id · split")."""
    heading = r"^\*\*(.+?)\*\* · [^\n]+ · (?:train|val|test)(?:  \n|$)"
    return [m.group(1) for m in (re.match(heading, md.value) for md in at.markdown) if m]


def test_browser_filters_change_the_rows_and_pages_on_the_server(explore_env):
    test = load_dataset(explore_env["FUSION_DEMO_DATA"]).split("test")
    at = open_explore()
    assert at.title[0].value == "Explore" and not at.error
    assert matching(at) == len(test)
    assert len(card_labels(at)) == min(24, len(test))

    at.multiselect(key="browse_label").set_value(["3"]).run()
    assert matching(at) == sum(r.label == "3" for r in test)
    assert set(card_labels(at)) == {"3"}

    at.multiselect(key="browse_modalities").set_value(["audio+image+text"]).run()
    expected = [r for r in test if r.label == "3" and r.present() == ["audio", "image", "text"]]
    assert matching(at) == len(expected)

    at.multiselect(key="browse_label").set_value([]).run()
    at.multiselect(key="browse_modalities").set_value([]).run()
    at.selectbox(key="explore_split").set_value("all").run()
    at.selectbox(key="browse_size").set_value(12).run()
    assert matching(at) == len(load_dataset(explore_env["FUSION_DEMO_DATA"]).records) > 24
    at.button(key="browse_next").click().run()
    assert at.number_input(key="browse_page").value == 2
    assert len(card_labels(at)) == 12 and not at.exception


def test_browser_filters_and_page_survive_a_visit_to_another_tab(explore_env):
    """A closed tab's widgets are not drawn; the browser's filters, sorting and page are kept
    (``persist_state``), so coming back shows the same rows."""
    at = open_explore(explore_split="all")
    at.multiselect(key="browse_label").set_value(["3"]).run()
    at.selectbox(key="browse_size").set_value(12).run()
    at.toggle(key="browse_desc").set_value(True).run()
    at.multiselect(key="browse_more").set_value(["late · confidence"]).run()
    confidence = at.slider(key="browse_late___confidence")
    narrowed = (confidence.min, (confidence.min + confidence.max) / 2)
    confidence.set_value(narrowed).run()
    filtered = matching(at)
    at.session_state[EXPLORE_TAB] = "Neighbours"
    at.run()
    assert not at.exception and not any(w.key == "browse_label" for w in at.multiselect)
    at.session_state[EXPLORE_TAB] = "Browse"
    at.run()
    assert at.multiselect(key="browse_label").value == ["3"]
    assert at.selectbox(key="browse_size").value == 12 and at.toggle(key="browse_desc").value
    assert matching(at) == filtered and set(card_labels(at)) == {"3"}
    assert at.slider(key="browse_late___confidence").value == narrowed
    for split in ("val", "test"):  # the filter's range follows the split's values; the kept range fits in it
        at.selectbox(key="explore_split").set_value(split).run()
        assert not at.exception, [e.value for e in at.exception]
        slider = at.slider(key="browse_late___confidence")
        low, high = slider.value
        assert slider.min <= low <= high <= slider.max
        assert low == max(narrowed[0], slider.min) or (low, high) == (slider.min, slider.max)


def card_control(at):
    """The first browser card's "Open" control, and its record id."""
    control = next(w for w in at.segmented_control if w.key and w.key.endswith("_open"))
    return control, control.key.removeprefix("browse_").removesuffix("_open")


def test_a_browser_card_opens_its_sample_on_predict(explore_env):
    at = open_explore()
    control, record_id = card_control(at)
    control.set_value("Predict").run()
    assert not at.exception
    assert at.title[0].value == "Predict"
    assert at.selectbox(key="predict_record").value == record_id
    assert len(at.dataframe[0].value) == len(at.multiselect(key="sidebar_chosen").value)  # every chosen checkpoint predicted it


def test_a_browser_card_shows_its_neighbours_and_is_ready_again(explore_env):
    at = open_explore()
    control, record_id = card_control(at)
    control.set_value("Similar").run()
    assert not at.exception
    assert at.session_state[EXPLORE_TAB] == "Neighbours"
    assert record_id in at.session_state[CURRENT_SAMPLE].description
    at.session_state[EXPLORE_TAB] = "Browse"
    at.run()
    control, _ = card_control(at)
    assert control.value is None  # cleared: the same choice works again on the next click


def test_the_projector_draws_the_chosen_space(explore_env):
    at = open_explore("Projector", map_method="pca")  # UMAP's first fit compiles numba code: the browser test pays it
    assert len(at.get("plotly_chart")) == 1
    assert any("fusion module's output" in c.value for c in at.caption)
    at.selectbox(key="map_space").set_value("image").run()
    assert any("image encoder's embedding" in c.value for c in at.caption)


def test_neighbours_of_a_picked_sample_in_every_space(explore_env):
    at = open_explore("Neighbours")
    at.button(key="explore_nn_use").click().run()
    assert not at.exception
    notes = [m.value for m in at.markdown]  # a card's note is in its markdown block
    assert sum("nearest of another class" in n for n in notes) == len([m for m in at.markdown if " · The " in m.value])
    assert any("fused" in m.value and "before the classification head" in m.value for m in at.markdown)


def test_retrieval_heads_train_on_the_page_and_search_with_the_current_sample(explore_env):
    dataset = load_dataset(explore_env["FUSION_DEMO_DATA"])
    record = next(r for r in dataset.split("test") if r.image is not None)
    sample = sample_from_record(dataset, record.id)
    at = open_explore("Retrieval", sample=sample)
    assert any("No retrieval model" in i.value for i in at.info)
    at.button(key="retrieval_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert {"image → audio", "audio → image", "text → image"} <= set(table["direction"])
    search_with = at.selectbox(key="retrieval_from")
    assert search_with.options == sample.decoded.present() and search_with.value == search_with.options[0]
    assert sum(re.search(r"  \n#\d+ · similarity", m.value) is not None for m in at.markdown) == 10  # the hits' card notes
