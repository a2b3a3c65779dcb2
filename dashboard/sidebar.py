"""The sidebar every page shares: dataset and checkpoint folder pickers, checkpoints, device, cache and job status.

The folders are picked from lists (:func:`core.roots.dataset_folders`,
:func:`core.roots.checkpoint_folders`), never typed: the browser cannot name a server path
outside the roots. A ``?dataset=``/``?checkpoints=`` link is checked against the roots like
any other path and refused with the one neutral message.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import roots
from core.card import CheckpointInfo
from core.errors import AccessError, DatasetError
from core.settings import settings
from dashboard import loaders
from dashboard.errors import show_exception
from dashboard.jobs import work_queue
from dashboard.links import new_folder_links
from dashboard.markup import escape_markdown
from dashboard.state import SELECTION, Selection

BUILD_DEMO_HINT = "Build it with `make run` (or `.venv/bin/python -m core demo`), then reload this page."
DATASET_KEY = "sidebar_dataset"
CHECKPOINTS_KEY = "sidebar_checkpoints"


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
            return None, f"The demo dataset is not built yet. {BUILD_DEMO_HINT}", None
        return None, "This dataset folder is no longer there; pick another one in the sidebar.", None
    result = loaders.dataset_or_error(root)
    if isinstance(result, DatasetError):
        return None, str(result), result
    return result, None, None


def folder_options() -> tuple[list[str], list[str]]:
    """The dataset folders and checkpoint folders a user may pick (resolved paths as strings).

    The demo folder is always offered first, built or not, so its absence is explained.
    """
    demo = settings().demo_data.expanduser().resolve()
    datasets, checkpoint_dirs = loaders.folder_choices()
    return list(dict.fromkeys([str(demo), *datasets])), checkpoint_dirs


def _apply_folder_links(datasets: list[str], checkpoint_dirs: list[str]) -> None:
    """Pick the folders a URL asks for, after the same root check as everything else."""
    offered = {"dataset": (roots.dataset_folder, datasets, DATASET_KEY), "checkpoints": (roots.checkpoint_folder, checkpoint_dirs, CHECKPOINTS_KEY)}
    for name, value in new_folder_links().items():
        resolve, options, key = offered[name]
        try:
            folder = str(resolve(value))
            if folder not in options:  # inside a root but not a folder it offers: the same answer
                raise AccessError(roots.NOT_OFFERED)
            st.session_state[key] = folder
        except AccessError as err:
            show_exception(err, "opening the link")


def _folder_picker(label: str, options: list[str], key: str, default: str, folder_roots, help: str) -> Path:
    if st.session_state.get(key) not in options:  # first run, or the folder went away
        st.session_state[key] = default if default in options else options[0]
    return Path(
        st.selectbox(label, options, key=key, format_func=lambda p: roots.folder_label(Path(p), folder_roots), help=help)
    )


def render_sidebar() -> Selection:
    """Draw the sidebar and store the resulting :class:`Selection` in the session."""
    config = settings()
    datasets, checkpoint_dirs = folder_options()
    _apply_folder_links(datasets, checkpoint_dirs)
    with st.sidebar:
        st.markdown("### :material/tune: Data and models")
        dataset_root = _folder_picker(
            "Dataset folder",
            datasets,
            DATASET_KEY,
            datasets[0],
            config.data_roots,
            "Folders with manifest.csv or manifest.jsonl inside the data folders this server was given "
            "(FUSION_DATA_ROOTS).",
        )
        checkpoint_dir = _folder_picker(
            "Checkpoint folder",
            checkpoint_dirs,
            CHECKPOINTS_KEY,
            str(config.checkpoints.expanduser().resolve()),
            config.checkpoint_roots,
            "Folders of checkpoints (model.safetensors + card.json) inside the checkpoint folders this "
            "server was given (FUSION_CHECKPOINT_ROOTS).",
        )
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
            st.caption(f"No checkpoints in this folder. {BUILD_DEMO_HINT}")
        unreadable = [i for i in infos if i.error is not None]
        if unreadable:
            with st.expander(f":material/warning: {len(unreadable)} unreadable checkpoint(s)"):
                for info in unreadable:
                    st.caption(f"**{escape_markdown(info.name)}**: {escape_markdown(info.error)}")

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


def render_status() -> None:
    """The sidebar's last lines: device, dataset, models loaded, evaluations cached, heavy jobs.

    Drawn after the page (``dashboard/app.py``), so the counts include what the page just
    loaded, and the first page is drawn before the device is known: that imports torch (1.5 s),
    which nothing else on the Overview needs.
    """
    from core.device import describe_device

    chosen = st.session_state.get(SELECTION)
    dataset = chosen.dataset if chosen is not None else None
    dataset_line = (
        f"{escape_markdown(chosen.dataset_root.name)} · {len(dataset.records):,} records"
        if dataset is not None
        else "no dataset loaded"
    )
    queue = work_queue()
    with st.sidebar:
        st.divider()
        st.caption(f":material/memory: **Device:** {describe_device(loaders.compute_device())}")
        st.caption(
            f":material/database: {dataset_line}  \n"
            f":material/deployed_code: models loaded: {loaders.loaded_model_count()}  \n"
            f":material/cached: evaluations cached: {loaders.cached_evaluation_count()}  \n"
            f":material/pending: heavy jobs: {len(queue.running())} running, {len(queue.waiting())} waiting "
            f"(at most {queue.capacity} at once)"
            + ("  \n:material/lock: read-only server" if settings().read_only else "")
        )
