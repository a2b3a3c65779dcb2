"""The Train page's compression form: a finished checkpoint, a method and its parameters, run in
the background like training (the new checkpoint joins the sidebar's list when it is saved)."""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from core.card import read_card
from core.compress import COMPRESSION_METHODS, CompressOptions, default_name
from core.compress.runs import CompressSpec
from core.fusion import FUSION_NAMES
from core.settings import settings
from core.train.runs import create_run
from dashboard.access import current_user
from dashboard.jobs import submit_training
from dashboard.state import Selection

FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def render_compress_form(chosen: Selection) -> None:
    """Pick a checkpoint of the sidebar's folder, a method and its parameters; start the run."""
    candidates = {str(i.path): i for i in chosen.checkpoints if i.error is None and i.compression != "int8"}
    if not candidates:
        st.caption("No checkpoint to compress in the sidebar's folder yet: train one first.")
        return
    cols = st.columns([2, 1.3, 2.4], vertical_alignment="bottom")
    path = cols[0].selectbox(
        "Checkpoint", list(candidates), format_func=lambda p: candidates[p].name, key="compress_checkpoint",
        help="A finished checkpoint of the sidebar's folder (int8 ones cannot be compressed further).",
    )  # fmt: skip
    method = cols[1].selectbox(
        "Method", list(COMPRESSION_METHODS), key="compress_method",
        help="; ".join(f"{name}: {description}" for name, description in COMPRESSION_METHODS.items()),
    )  # fmt: skip
    card = read_card(path)
    options = CompressOptions()
    argument = ""
    if method == "prune":
        fraction = cols[2].slider("Fraction of fusion weights pruned", 0.1, 0.95, 0.5, 0.05, key="compress_fraction",
                                  help="The smallest-magnitude weights of the fusion and head are zeroed, then the rest fine-tuned.")  # fmt: skip
        argument = f":{fraction:g}"
    elif method == "distill":
        inner = cols[2].columns(2)
        hidden = inner[0].number_input("Student width", 2, 4096, max(2, int(card.fusion_config.get("hidden", 128)) // 2),
                                       key=f"compress_hidden_{path}", help="The student fusion's hidden size (the teacher's is "
                                       f"{card.fusion_config.get('hidden')}).")  # fmt: skip
        student = inner[1].selectbox("Student fusion", list(FUSION_NAMES), index=list(FUSION_NAMES).index(card.fusion),
                                     key=f"compress_student_{path}", help="The student's strategy (default: the teacher's).")  # fmt: skip
        knobs = st.columns(3)
        options = CompressOptions(
            student_hidden=int(hidden),
            student_fusion=student,
            temperature=knobs[0].number_input("Temperature", 0.5, 20.0, 4.0, 0.5, key="compress_temperature",
                                              help="Softens the teacher's and the student's outputs."),
            alpha=knobs[1].slider("Teacher's share of the loss", 0.0, 1.0, 0.7, 0.05, key="compress_alpha",
                                  help="The rest of the loss is on the true labels."),
        )  # fmt: skip
    else:
        description = COMPRESSION_METHODS[method]  # str.capitalize would lower "CPU"
        cols[2].caption(f"{description[:1].upper()}{description[1:]}; no training, takes seconds.")
    spec_method = method + argument
    suggested = default_name(candidates[path].name, spec_method, options)
    name_cols = st.columns([2, 1], vertical_alignment="bottom")
    name = name_cols[0].text_input(
        "New checkpoint", value=suggested, key=f"compress_name_{suggested}",
        help="Folder name of the compressed checkpoint, beside its parent.",
    ).strip()  # fmt: skip
    problem = None if FOLDER_NAME.match(name) else "Use letters, digits, '.', '_' and '-' only."
    if name == candidates[path].name:
        problem = "That is the parent's own folder."
    if problem:
        st.error(problem, icon=":material/error:")
    elif (Path(path).parent / name).exists():
        st.caption(f":material/warning: `{name}` exists and will be replaced.")
    read_only = settings().read_only
    dataset = card.dataset.path
    if name_cols[1].button(
        "Compress", icon=":material/compress:", disabled=bool(problem) or read_only, key="compress_start",
        help="Read-only mode: nothing can be written." if read_only else "Runs `python -m core compress` in the background.",
    ):  # fmt: skip
        run = create_run(
            CompressSpec(
                checkpoint=path,
                method=spec_method,
                out=str(Path(path).parent / name),
                data="" if dataset and Path(dataset).is_dir() else str(chosen.dataset_root),
                student_hidden=options.student_hidden,
                student_fusion=options.student_fusion,
                temperature=options.temperature,
                alpha=options.alpha,
            ),
            owner=current_user(),
        )
        submit_training(run)
        st.toast(f"Queued compression run {run.id}", icon=":material/compress:")
