"""Train: validate a dataset folder, queue a background training run, follow it live.

The dataset and the output folder are picked from the folders inside the server's roots;
core checks them again (and read-only mode) before it records the run, so the page is not
what enforces the rules. With sign-in on, a user sees and cancels only their own runs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.data import Dataset, validate_dataset
from core.data.manifest import MANIFEST_NAMES
from core.encoders import ENCODER_CHOICES
from core.figures.training import training_curves_figure
from core.fusion import FUSION_NAMES
from core.roots import READ_ONLY, folder_label
from core.sample import MODALITIES
from core.settings import settings
from core.train import parse_model_names
from core.train.runs import RunSpec, RunState, cancel_run, create_run, list_runs
from dashboard import loaders
from dashboard.access import current_user, owner_filter, sign_in_enabled
from dashboard.compression import render_compress_form
from dashboard.errors import friendly_errors
from dashboard.jobs import queued_ahead, submit_training, waiting_message
from dashboard.markup import escape_markdown
from dashboard.renderers import PLOTLY_CONFIG
from dashboard.sidebar import folder_options
from dashboard.state import selection

STATUS_BADGES = {
    "queued": ":orange-badge[:material/hourglass_top: queued]",
    "running": ":blue-badge[:material/autorenew: running]",
    "finished": ":green-badge[:material/check: finished]",
    "failed": ":red-badge[:material/error: failed]",
    "cancelled": ":gray-badge[:material/block: cancelled]",
}


@st.cache_data(show_spinner="Validating the dataset…", max_entries=8)
def validation_issues(root: str, manifest_mtime: float) -> tuple[int, list[dict]]:
    """Rows checked and every issue of the dataset (cached until the manifest changes)."""
    report = validate_dataset(root)
    return report.n_rows, [{"row": i.row or "manifest", "column": i.column, "problem": i.reason} for i in report.issues]


def manifest_mtime(root: Path) -> float:
    return max((p.stat().st_mtime for p in (root / n for n in MANIFEST_NAMES) if p.is_file()), default=0.0)


st.title("Train")
st.caption("Train fusion strategies and unimodal baselines in the background; runs survive closing the browser.")
chosen = selection()
config = settings()


def pick_folder(label: str, options: list[str], current: Path, folder_roots, key: str, help: str) -> str:
    """A selectbox of ``options`` (folders inside the roots), preselecting the sidebar's ``current``."""
    index = options.index(str(current)) if str(current) in options else 0
    return st.selectbox(
        label, options, index=index, key=key, format_func=lambda p: folder_label(Path(p), folder_roots), help=help
    )


if config.read_only:
    st.info(READ_ONLY, icon=":material/lock:")
else:
    with friendly_errors("preparing the training form"):
        datasets, checkpoint_dirs = folder_options()
        left, right = st.columns(2)
        with left:
            data = pick_folder(
                "Dataset folder", datasets, chosen.dataset_root, config.data_roots, "train_data",
                "A folder with manifest.csv or manifest.jsonl inside this server's data folders.",
            )  # fmt: skip
        with right:
            out = pick_folder(
                "Write checkpoints to", checkpoint_dirs, chosen.checkpoint_dir, config.checkpoint_roots, "train_out",
                "A checkpoint folder of this server. Each model is saved in a sub-folder named after it; "
                "an existing one of the same name is replaced.",
            )  # fmt: skip
        data_root = Path(data)
        n_rows, issues = validation_issues(str(data_root), manifest_mtime(data_root))
        bad_rows = {i["row"] for i in issues if i["row"] != "manifest"}
        # Rows with problems are left out of training (`train --skip-invalid`); a problem with the
        # manifest itself, or no valid row, blocks it.
        blocked = any(i["row"] == "manifest" for i in issues) or len(bad_rows) >= n_rows
        if blocked:
            st.error(f"The dataset has {len(issues)} problem(s) in {n_rows} rows; fix them before training.", icon=":material/rule:")
        elif issues:
            st.warning(
                f"{len(bad_rows):,} of {n_rows:,} rows have {len(issues):,} problem(s), listed below: training leaves "
                f"them out and uses the other {n_rows - len(bad_rows):,} rows.",
                icon=":material/rule:",
            )
        if issues:
            st.dataframe(pd.DataFrame(issues[:5000]), hide_index=True)
        else:
            st.success(
                f"{escape_markdown(data_root.name)}: {n_rows} rows, no problems found.", icon=":material/check_circle:"
            )

        baselines = [f"{m}-only" for m in MODALITIES]
        models = st.multiselect(
            "Strategies",
            list(FUSION_NAMES) + baselines,
            default=list(FUSION_NAMES),
            key="train_models",
            help="Fusion strategies share the same encoders, so they differ by fusion alone; "
            "<modality>-only baselines show what one modality achieves alone.",
        )
        loaded = loaders.dataset_or_error(data_root) if not blocked else None
        task_names = [t.name for t in loaded.tasks] if isinstance(loaded, Dataset) else []
        tasks, weighting = tuple(task_names), "fixed"
        if len(task_names) > 1:
            task_cols = st.columns([3, 1.4, 1.6], vertical_alignment="bottom")
            tasks = tuple(
                task_cols[0].multiselect(
                    "Tasks",
                    task_names,
                    default=task_names,
                    key="train_tasks",
                    help="The dataset's tasks the models learn together: shared encoders and fusion, one head per task.",
                )
            )
            weighting = task_cols[1].selectbox(
                "Task weighting",
                ["fixed", "uncertainty"],
                key="train_task_weighting",
                help="fixed: every task's loss counts the same; uncertainty: weights learned from each task's noise "
                "(Kendall et al. 2018).",
            )
            if task_cols[2].toggle(
                "Single-task copies",
                key="train_single_task",
                help="Also train each chosen strategy on each task alone, so Compare can tell whether sharing helps.",
            ):
                models = parse_model_names(",".join([*models, "single-task"]), list(MODALITIES), list(tasks))
        encoder_cols = st.columns(len(MODALITIES))
        encoders = {}
        for col, modality in zip(encoder_cols, MODALITIES, strict=True):
            options = [c if not c.startswith("hf:") else "hf:…" for c in ENCODER_CHOICES[modality]]
            choice = col.selectbox(
                f"{modality.capitalize()} encoder",
                options,
                key=f"train_encoder_{modality}",
                help="builtin: a small CNN trained here; a pretrained name: frozen packaged weights; "
                "hf:…: a Hugging Face model name in the local cache, or a model directory inside this server's folders.",
            )
            if choice == "hf:…":
                name = col.text_input(
                    "Hugging Face model",
                    key=f"train_hf_{modality}",
                    help="A model name in the local cache (org/name), or a model directory inside this server's folders.",
                )
                choice = f"hf:{name.strip()}" if name.strip() else ""
            encoders[modality] = choice
        balance_cols = st.columns([2, 1, 1], vertical_alignment="bottom")
        augment = balance_cols[0].multiselect(
            "Augment", list(MODALITIES), default=[], key="train_augment", placeholder="no augmentation",
            help="Train the built-in encoders on inputs transformed afresh each epoch (image: crop, rotation, colour "
            "jitter, noise; audio: shift, gain, noise, SpecAugment; text: word dropout and swaps). Off by default.",
        )  # fmt: skip
        class_weights = balance_cols[1].selectbox(
            "Class weights", ["none", "auto"], key="train_class_weights",
            help="auto: each class weighs in the loss by its inverse frequency, for imbalanced datasets.",
        )  # fmt: skip
        balanced = balance_cols[2].toggle(
            "Balanced sampler", key="train_balanced_sampler", help="Draw each epoch's rows so every class is seen equally often."
        )
        epoch_cols = st.columns(4, vertical_alignment="bottom")
        epochs = epoch_cols[0].number_input(
            "Fusion epochs", 1, 500, 60, key="train_epochs", help="Maximum epochs of each fusion head (early stopping may end sooner)."
        )
        encoder_epochs = epoch_cols[1].number_input(
            "Encoder epochs", 1, 500, 30, key="train_encoder_epochs", help="Maximum epochs of each built-in encoder."
        )
        missing_hf = [m for m, c in encoders.items() if c == ""]
        can_start = bool(models) and not blocked and not missing_hf and (bool(tasks) or not task_names)
        if epoch_cols[3].button(
            "Start training",
            type="primary",
            icon=":material/play_arrow:",
            disabled=not can_start,
            key="train_start",
            help="Queues `python -m core train` in the background; it starts when the server has a free slot. "
            "Needs a valid dataset and at least one strategy.",
        ):
            run = create_run(
                RunSpec(
                    data=str(data_root),
                    out=out,
                    models=tuple(models),
                    encoders={m: c for m, c in encoders.items() if c != "builtin"},
                    epochs=int(epochs),
                    encoder_epochs=int(encoder_epochs),
                    tasks=tasks if len(tasks) < len(task_names) else (),
                    task_weighting=weighting,
                    augment=tuple(augment),
                    class_weights=class_weights,
                    balanced_sampler=balanced,
                    skip_invalid=bool(issues),
                ),
                owner=current_user(),
            )
            submit_training(run)
            st.toast(f"Queued run {run.id}", icon=":material/rocket_launch:")


def render_run(run: RunState, expanded: bool) -> None:
    label = f"{run.id} · {', '.join(run.spec.models)}"
    with st.expander(label, expanded=expanded):
        head = st.columns([1, 3, 1], vertical_alignment="center")
        head[0].markdown(STATUS_BADGES.get(run.status, run.status))
        if run.status == "queued":
            ahead = queued_ahead(run.id)
            head[1].caption(waiting_message(ahead) if ahead is not None else "Waiting for this server to start it…")
        else:
            head[1].progress(run.progress, text=f"{run.stage} · {len(run.saved_requested)}/{len(run.spec.models)} saved")
        if run.status in ("queued", "running") and head[2].button(
            "Cancel", key=f"cancel_{run.id}", icon=":material/stop:", help="Stop this run; checkpoints already saved are kept."
        ):
            cancel_run(run.path, owner=owner_filter())
            st.rerun()
        data = escape_markdown(folder_label(Path(run.spec.data), config.data_roots))
        out = escape_markdown(folder_label(Path(run.spec.out), config.checkpoint_roots))
        by = f" by {escape_markdown(run.owner)}" if sign_in_enabled() else ""
        st.caption(f"started {run.started_at}{by} · data {data} → {out}")
        epochs = run.epochs()
        if epochs:
            st.plotly_chart(training_curves_figure(epochs), config=PLOTLY_CONFIG, key=f"curves_{run.id}")
        if run.status == "failed":
            st.error(f"The run stopped with exit code {run.exit_code}. The end of its log:", icon=":material/error:")
            st.code(run.log_tail or "(empty log)", language="text")


@st.fragment(run_every=2.0)
def runs_panel() -> None:
    """Polls the run folders; when a run finishes, the sidebar's checkpoint list is refreshed."""
    with friendly_errors("reading the training runs"):
        runs = list_runs(owner=owner_filter())  # with sign-in on, core lists only this user's runs
        if not runs:
            st.caption("No training run yet.")
            return
        if "train_finished_seen" not in st.session_state:
            st.session_state["train_finished_seen"] = {r.id for r in runs if r.status == "finished"}
        seen = st.session_state["train_finished_seen"]
        newly_finished = [r.id for r in runs if r.status == "finished" and r.id not in seen]
        for i, run in enumerate(runs[:10]):
            render_run(run, expanded=i == 0 or run.status in ("queued", "running"))
        if newly_finished:
            seen.update(newly_finished)
            loaders.forget_checkpoint_list()
            st.rerun(scope="app")


if not config.read_only:
    st.subheader("Compress a checkpoint")
    with friendly_errors("preparing the compression form"):
        render_compress_form(chosen)

st.subheader("Runs")
runs_panel()
