"""The sidebar every page shares: dataset, checkpoint folder and picker, device, cache status."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.checkpoints import CheckpointInfo
from core.device import describe_device
from core.errors import DatasetError
from core.settings import settings
from dashboard import loaders
from dashboard.state import SELECTION, Selection

BUILD_DEMO_HINT = "Build it with `make run` (or `.venv/bin/python -m core demo`), then reload this page."


def _default_choice(infos: list[CheckpointInfo]) -> list[str]:
    """Every fusion strategy: comparing them is what the demo is for (baselines and compressed
    checkpoints stay one click away)."""
    fusions = [str(i.path) for i in infos if i.kind == "fusion" and i.compression is None]
    return fusions or [str(i.path) for i in infos[:3]]


def _label(info: CheckpointInfo) -> str:
    """``early``, ``image-only · early``, ``early-int8 · int8 of early``."""
    if info.compression is not None:
        return f"{info.name} · {info.compression} of {info.parent}"
    return info.name if info.name == info.fusion else f"{info.name} · {info.fusion}"


def _load_dataset(root: Path) -> tuple:
    if not root.exists():
        if root == settings().demo_data.expanduser().resolve():
            return None, f"The demo dataset is not built yet ({root} does not exist). {BUILD_DEMO_HINT}", None
        return None, f"The dataset folder {root} does not exist. Check the path in the sidebar.", None
    result = loaders.dataset_or_error(root)
    if isinstance(result, DatasetError):
        return None, str(result), result
    return result, None, None


def render_sidebar() -> Selection:
    """Draw the sidebar and store the resulting :class:`Selection` in the session."""
    with st.sidebar:
        st.markdown("### :material/tune: Data and models")
        data_text = st.text_input(
            "Dataset folder",
            value=str(settings().demo_data),
            key="sidebar_dataset",
            help="A folder with manifest.csv or manifest.jsonl. Defaults to the embedded demo "
            "(env FUSION_DEMO_DATA overrides the default).",
        )
        ckpt_text = st.text_input(
            "Checkpoint folder",
            value=str(settings().checkpoints),
            key="sidebar_checkpoints",
            help="Folder whose sub-folders are checkpoints (model.safetensors + card.json). "
            "Env FUSION_CHECKPOINTS overrides the default.",
        )
        dataset_root = Path(data_text.strip() or settings().demo_data).expanduser().resolve()
        checkpoint_dir = Path(ckpt_text.strip() or settings().checkpoints).expanduser()
        dataset, error, report = _load_dataset(dataset_root)

        infos = loaders.checkpoint_infos(checkpoint_dir)
        readable = [i for i in infos if i.error is None]
        by_path = {str(i.path): i for i in readable}
        # A stale choice (folder changed, checkpoint deleted) is dropped instead of raising.
        if "sidebar_chosen" in st.session_state:
            st.session_state["sidebar_chosen"] = [p for p in st.session_state["sidebar_chosen"] if p in by_path]
        else:
            st.session_state["sidebar_chosen"] = _default_choice(readable)
        chosen_paths = st.multiselect(
            "Checkpoints",
            options=list(by_path),
            format_func=lambda p: _label(by_path[p]),
            key="sidebar_chosen",
            placeholder="Pick checkpoints to compare",
            help="One checkpoint to inspect, or several to compare side by side on Predict, Compare and Explain.",
        )
        if not infos:
            st.caption(f"No checkpoints in `{checkpoint_dir}`. {BUILD_DEMO_HINT}")
        unreadable = [i for i in infos if i.error is not None]
        if unreadable:
            with st.expander(f":material/warning: {len(unreadable)} unreadable checkpoint(s)"):
                for info in unreadable:
                    st.caption(f"**{info.name}**: {info.error}")

        st.divider()
        st.caption(f":material/memory: **Device:** {describe_device(loaders.compute_device())}")
        dataset_line = (
            f"{dataset_root.name} · {len(dataset.records):,} records" if dataset is not None else "no dataset loaded"
        )
        st.caption(
            f":material/database: {dataset_line}  \n"
            f":material/deployed_code: models loaded: {loaders.loaded_model_count()}  \n"
            f":material/cached: evaluations cached: {loaders.cached_evaluation_count()}"
        )

    selection = Selection(
        dataset_root=dataset_root,
        dataset=dataset,
        dataset_error=error,
        dataset_report=report,
        checkpoint_dir=checkpoint_dir,
        checkpoints=infos,
        chosen=[by_path[p] for p in chosen_paths],
    )
    st.session_state[SELECTION] = selection
    return selection
