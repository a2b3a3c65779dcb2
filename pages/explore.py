"""Explore: browse a split with the checkpoints' predictions, map each representation space in 2-D,
find a sample's nearest neighbours, and retrieve across modalities."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.explore import (
    SPLIT_CHOICES,
    BrowseQuery,
    nearest_neighbors,
    neighbor_agreement,
    place,
    retrieve,
    sample_vectors,
)
from core.explore.projection import METHODS
from core.explore.retrieval import train_retrieval
from core.explore.retrieval_metrics import RetrievalReport
from core.explore.spaces import space_names
from core.figures import explore as figures
from core.settings import settings
from dashboard import explore_loaders, loaders
from dashboard.errors import friendly_errors
from dashboard.explore_views import (
    EXPLORE_TAB,
    SELECTED_IDS,
    TABS,
    browse_controls,
    render_browser,
    render_hits,
    render_neighbors,
    render_query,
)
from dashboard.inputs import decode_uploads, pick_record_id
from dashboard.markup import escape_markdown
from dashboard.renderers import PLOTLY_CONFIG
from dashboard.state import KEEP, current_sample, sample_from_record, selection, set_current_sample

st.title("Explore")
st.caption(
    "Browse a split with the checkpoints' predictions, map each representation space, find a sample's "
    "nearest neighbours, and retrieve one modality from another."
)
chosen = selection()
explore_loaders.warm_projector()
dataset = chosen.require_dataset()
models = loaders.load_models(chosen.chosen)
explain_with = str(chosen.chosen[0].path) if chosen.chosen else None

with friendly_errors("reading your sample"), st.expander("Your sample: upload one to place it on the map and find its neighbours"):
    cols = st.columns(3)
    image = cols[0].file_uploader("Image", key="explore_image")
    text = cols[1].text_area("Text", key="explore_text", height=100, placeholder="Type or paste text…")
    audio = cols[2].file_uploader("Audio", key="explore_audio")
    uploaded = decode_uploads(image.getvalue() if image else None, text, audio.getvalue() if audio else None)
    for modality, message in uploaded.errors.items():
        st.error(f"**{modality.capitalize()}:** {message}", icon=":material/error:")
    if uploaded.sample is not None and uploaded.sample.key != getattr(current_sample(), "key", None):
        set_current_sample(uploaded.sample)
    sample = current_sample()
    st.caption(f"Current sample: **{escape_markdown(sample.description)}** ({' + '.join(sample.decoded.present())})" if sample else "No current sample yet.")

split = st.selectbox(
    "Split", SPLIT_CHOICES, index=SPLIT_CHOICES.index("test"), key="explore_split",
    help="The split the browser, the map and retrieval show ('all': every split).",
)  # fmt: skip
tabs = st.tabs(TABS, key=EXPLORE_TAB, on_change="rerun")


def pick_checkpoint(key: str):
    """A checkpoint among the sidebar's choice; stops the tab with a hint when there is none."""
    if not models:
        st.info("Pick a checkpoint in the sidebar: its embeddings are what this tab explores.", icon=":material/checklist:")
        return None
    name = st.selectbox("Checkpoint", list(models), key=key, persist_state=KEEP, help="Whose embeddings (and fusion) to use.")
    return models[name][1]


with tabs[0]:
    if tabs[0].open:
        with friendly_errors("browsing the split"):
            with st.spinner("Predicting the split with each chosen checkpoint (once; then cached)…"):
                table = explore_loaders.table(dataset, split, [info for info, _ in models.values()])
            query = browse_controls(table, "browse")
            selected = st.session_state.get(SELECTED_IDS)
            if selected:
                note, clear = st.columns([4, 1], vertical_alignment="center")
                note.info(f"Showing only the {len(selected)} samples selected on the map.", icon=":material/gesture:")
                if clear.button("Show all", key="browse_clear_selection"):
                    st.session_state.pop(SELECTED_IDS)
                    st.rerun()
                query.ids = list(selected)
            render_browser(table, query, dataset, "browse", explain_with)

with tabs[1]:
    if tabs[1].open:
        with friendly_errors("drawing the embedding map"):
            controls = st.columns([2, 1.5, 1, 2])
            with controls[0]:
                loaded = pick_checkpoint("map_checkpoint")
            if loaded is not None:
                space = controls[1].selectbox("Space", space_names(loaded.model), index=len(loaded.model.modalities), key="map_space", persist_state=KEEP)
                method = controls[2].selectbox("Method", METHODS, key="map_method", persist_state=KEEP, format_func=str.upper)
                table = explore_loaders.table(dataset, split, [info for info, _ in models.values()])
                colour_options = ["label", *[c for c in table.frame.columns if c not in ("position", "id", "text", "label")]]
                colour = controls[3].selectbox("Colour by", colour_options, key="map_colour", persist_state=KEEP)
                spaces = explore_loaders.spaces(loaded, dataset, split)
                with st.spinner(f"Fitting {method.upper()} on {len(spaces.space(space)):,} points (once; then cached on disk)…"):
                    result = explore_loaders.projection(spaces, space, method)
                by_id = table.frame.set_index("id")
                placed = []
                if sample is not None:
                    vector = sample_vectors(loaded, sample.decoded).get(space)
                    if vector is None:
                        st.caption(f"The current sample ({escape_markdown(sample.description)}) has no {space}: it is not on this map.")
                    else:
                        (x, y), = place(result, spaces, vector, indexes=explore_loaders.index)
                        placed.append(("current sample", float(x), float(y)))
                fig = figures.projection_figure(
                    result, by_id.loc[result.ids, "label"].tolist(), by_id.loc[result.ids, colour].tolist(), colour, placed=placed
                )
                event = st.plotly_chart(fig, config=PLOTLY_CONFIG, key="explore_map", on_select="rerun", selection_mode=("box", "lasso"))
                picked = [p["customdata"] for p in event.selection.points if isinstance(p.get("customdata"), str)]
                if picked:
                    st.session_state[SELECTED_IDS] = picked
                for note in result.notes:
                    st.caption(f":material/info: {note}")
                st.caption("Draw a lasso or a box (chart toolbar) to list those samples below and in the Browse tab.")
                ids = st.session_state.get(SELECTED_IDS)
                if ids:
                    st.subheader(f"{len(ids)} selected samples")
                    render_browser(table, BrowseQuery(ids=list(ids)), dataset, "map_selected", explain_with)

with tabs[2]:
    if tabs[2].open:
        with friendly_errors("finding neighbours"):
            with st.expander("Pick a dataset sample" if sample else "Pick a sample", expanded=sample is None):
                left, mid, right = st.columns([1, 3, 1], vertical_alignment="bottom")
                record_id = pick_record_id(dataset, "explore_nn", left, mid)
                if right.button("Use this sample", key="explore_nn_use") and record_id is not None:
                    sample = sample_from_record(dataset, record_id)
                    set_current_sample(sample)
            controls = st.columns([2, 1, 1])
            with controls[0]:
                loaded = pick_checkpoint("nn_checkpoint")
            if sample is None:
                st.info("Upload a sample above, open one from the browser (Similar), or pick a dataset sample.", icon=":material/info:")
            elif loaded is not None:
                k = controls[1].number_input("Neighbours", 1, 20, 5, key="nn_k", persist_state=KEEP)
                searched = controls[2].selectbox("Searched split", SPLIT_CHOICES, key="nn_split", persist_state=KEEP)
                index_spaces = explore_loaders.spaces(loaded, dataset, searched)
                if sample.decoded.label is not None:
                    reference, kind = sample.decoded.label, "label"
                else:
                    prediction = loaders.prediction(str(loaded.path), loaded.card.sha256, sample.key, sample.decoded)
                    reference, kind = (prediction.prediction, "prediction") if prediction else (None, "nearest neighbour")
                report = nearest_neighbors(
                    index_spaces, sample_vectors(loaded, sample.decoded), int(k), query=sample.description,
                    reference_label=reference, reference=kind, exclude_id=sample.decoded.id, indexes=explore_loaders.index,
                )  # fmt: skip
                render_query(
                    sample,
                    f"The {k} nearest **{searched}** samples to **{escape_markdown(sample.description)}** in each space "
                    f"(cosine distance), and the nearest whose label is not its {kind} **{reference}**.",
                )
                render_neighbors(report, dataset, {r.id: r for r in index_spaces.records}, "nn")
                with st.expander(f"How well does each space of {loaded.name} group the classes?"):
                    agreement = neighbor_agreement(
                        explore_loaders.spaces(loaded, dataset, "test"), explore_loaders.spaces(loaded, dataset, "train"),
                        int(k), indexes=explore_loaders.index,
                    )  # fmt: skip
                    st.dataframe(figures.agreement_table(agreement), hide_index=True)
                    st.caption(f"Test samples and their {k} nearest training samples (`python -m core neighbors` prints the same).")

with tabs[3]:
    if tabs[3].open:
        with friendly_errors("retrieving across modalities"):
            found = explore_loaders.retrieval_models()
            with st.expander("Train retrieval heads", expanded=not found):
                st.caption(
                    "Contrastive projections between every pair of modalities (CLIP's symmetric InfoNCE, learned "
                    "temperature), trained on a checkpoint's cached embeddings: seconds once the split is embedded."
                )
                with st.columns([2, 1])[0]:
                    source = pick_checkpoint("retrieval_source")
                if source is not None and st.button(
                    "Train", key="retrieval_train", disabled=settings().read_only,
                    help="Disabled in read-only mode (FUSION_READ_ONLY)." if settings().read_only else "Train and score on the test split.",
                ):  # fmt: skip
                    with st.status(f"Training retrieval heads on {source.name}'s embeddings…", expanded=True) as status:
                        train_retrieval(source, dataset, settings().retrieval_dir / source.name, progress=st.write)
                        status.update(label="Trained", state="complete", expanded=False)
                    st.rerun()
            if not found:
                st.info(f"No retrieval model in `{settings().retrieval_dir}` yet: train one above.", icon=":material/info:")
            else:
                names = {str(path): card for path, card in found}
                chosen_path = st.selectbox("Retrieval model", list(names), key="retrieval_model", persist_state=KEEP, format_func=lambda p: f"{names[p].name} (on {names[p].source.name})")
                card = names[chosen_path]
                retrieval = explore_loaders.retrieval_model(Path(chosen_path), card)
                report = RetrievalReport.from_json(card.report)
                st.dataframe(figures.retrieval_table(report), hide_index=True)
                st.caption(
                    "Test split; chance levels in brackets. R@K and median rank: a query's own row (one image with its own "
                    "sound or text); P@10 and mAP: any sample with the query's label."
                )
                st.plotly_chart(figures.retrieval_figure(report), config=PLOTLY_CONFIG, key="retrieval_figure")
                source = loaders.load_model(card.source.path)
                if sample is None:
                    st.info("Upload a sample above (or pick one on Neighbours) to retrieve with it.", icon=":material/upload:")
                else:
                    usable = [m for m in sample.decoded.present() if m in card.modalities]
                    if not usable:
                        st.warning(f"Your sample has none of {', '.join(card.modalities)}.")
                    else:
                        cols = st.columns(4)
                        query_modality = cols[0].selectbox("Search with", usable, key="retrieval_from", persist_state=KEEP)
                        targets = [m for m in card.modalities if m != query_modality and sorted([m, query_modality]) in card.pairs]
                        target = cols[1].selectbox("Find", targets, key="retrieval_to", persist_state=KEEP)
                        k = cols[2].number_input("Results", 1, 50, 10, key="retrieval_k", persist_state=KEEP)
                        spaces = explore_loaders.spaces(source, dataset, split)
                        result = retrieve(
                            retrieval, spaces, sample.decoded, query_modality, target, int(k), source=source,
                            indexes=explore_loaders.gallery,
                        )  # fmt: skip
                        render_query(
                            sample,
                            f"The {target} samples of **{split}** closest to the {query_modality} of **{escape_markdown(sample.description)}** "
                            f"in {retrieval.name}'s shared {query_modality}–{target} space (cosine similarity):",
                        )
                        render_hits(result, dataset, {r.id: r for r in spaces.records})
