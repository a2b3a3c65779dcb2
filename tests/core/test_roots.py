"""Confinement: only folders inside the roots are offered or accepted, with one neutral refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import roots
from core.errors import AccessError
from core.settings import Settings


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A data root with datasets at several depths, a checkpoint root, and things outside both."""
    data, ckpt, outside = tmp_path / "data", tmp_path / "ckpt", tmp_path / "outside"
    for folder in (data / "digits", data / "team" / "animals", data / "a" / "b" / "c" / "too-deep", data / ".hidden", outside):
        folder.mkdir(parents=True)
        (folder / "manifest.csv").write_text("label,text\ncat,a cat\n")
    (data / "notes").mkdir()  # no manifest: not a dataset
    (data / "link-out").symlink_to(outside, target_is_directory=True)
    (data / "digits" / "images").mkdir()
    (data / "manifest-out").mkdir()
    (data / "manifest-out" / "manifest.csv").symlink_to(outside / "manifest.csv")
    for name in ("early", "late"):
        (ckpt / name).mkdir(parents=True)
        (ckpt / name / "card.json").write_text("{}")
    (ckpt / "experiments" / "gated").mkdir(parents=True)
    (ckpt / "experiments" / "gated" / "card.json").write_text("{}")
    return {"data": data, "ckpt": ckpt, "outside": outside}


def config(tree: dict[str, Path], **extra) -> Settings:
    return Settings(demo_data=tree["data"], checkpoints=tree["ckpt"], **extra)


def refusal(path, allowed) -> str:
    with pytest.raises(AccessError) as caught:
        roots.resolve_inside(path, allowed)
    return str(caught.value)


def test_paths_inside_a_root_are_resolved(tree):
    allowed = (tree["data"],)
    assert roots.resolve_inside(tree["data"], allowed) == tree["data"]
    assert roots.resolve_inside(f"{tree['data']}/digits/", allowed) == tree["data"] / "digits"
    assert roots.resolve_inside(tree["data"] / "new-folder", allowed) == tree["data"] / "new-folder"  # may not exist yet


def test_everything_else_gets_the_same_message_whether_it_exists_or_not(tree):
    allowed = (tree["data"],)
    attempts = [
        "/etc",
        "/",
        "../..",
        f"{tree['data']}/../outside",  # `..` is refused even though the folder exists
        f"{tree['data']}/digits/../digits",  # ... and even when it would land inside
        tree["data"] / "link-out",  # a symlink leading out of the root
        tree["data"] / "link-out" / "sub",
        tree["outside"],
        tree["outside"] / "does-not-exist",
        "/no/such/folder/anywhere",
        "digits",  # relative
        "",
        "~",
        "/etc\x00/passwd",
    ]
    messages = {refusal(path, allowed) for path in attempts}
    assert messages == {roots.NOT_OFFERED}
    assert "exist" not in roots.NOT_OFFERED


def test_a_root_reached_through_a_symlink_is_still_the_root(tree, tmp_path):
    alias = tmp_path / "alias"
    alias.symlink_to(tree["data"], target_is_directory=True)
    assert roots.resolve_inside(alias / "digits", (tree["data"],)) == tree["data"] / "digits"


def test_dataset_folders_are_found_to_a_small_depth_inside_the_roots_only(tree):
    found = roots.dataset_folders(config(tree).data_roots)
    data = tree["data"]
    assert found == [data / "digits", data / "team" / "animals"]  # breadth first, sorted within a level
    assert all(roots.is_inside(f, (data,)) for f in found)
    deeper = roots.dataset_folders(config(tree).data_roots, depth=4)
    assert data / "a" / "b" / "c" / "too-deep" in deeper
    assert tree["outside"] not in deeper and data / ".hidden" not in deeper and data / "manifest-out" not in deeper


def test_extra_roots_add_their_datasets(tree):
    found = roots.dataset_folders(config(tree, extra_data_roots=(tree["outside"],)).data_roots)
    assert found[-1] == tree["outside"]


def test_checkpoint_folders_are_the_roots_and_folders_holding_checkpoints(tree, tmp_path):
    missing = tmp_path / "not-yet"
    found = roots.checkpoint_folders(config(tree, extra_checkpoint_roots=(missing,)).checkpoint_roots)
    assert found == [tree["ckpt"], missing, tree["ckpt"] / "experiments"]


def test_folder_labels_name_the_root(tree):
    data = tree["data"]
    assert roots.folder_label(data, (data,)) == "data"
    assert roots.folder_label(data / "team" / "animals", (data,)) == "data/team/animals"


def test_read_only_refuses_writes():
    roots.require_writable(Settings(read_only=False))
    with pytest.raises(AccessError, match="read-only"):
        roots.require_writable(Settings(read_only=True))
