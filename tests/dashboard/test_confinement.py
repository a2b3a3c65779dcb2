"""Confinement, read-only mode and per-user runs, through the real pages (AppTest).

The browser-level version (URL parameters typed into Chromium) is in ``test_security_browser.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.roots import NOT_OFFERED, READ_ONLY
from tests.dashboard.conftest import run_dashboard
from tests.dashboard.test_access import AUTH


@pytest.fixture
def extra_root(dashboard_env, tmp_path, monkeypatch) -> dict[str, Path]:
    """A second data root holding one dataset and a symlink to a dataset outside every root."""
    root = tmp_path.resolve() / "shared"
    inside, outside = root / "pets", tmp_path.resolve() / "private"
    for folder in (inside, outside):
        folder.mkdir(parents=True)
        (folder / "manifest.csv").write_text("label,split,text\ncat,train,a cat\ndog,val,a dog\n")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("FUSION_DATA_ROOTS", str(root))
    return {"root": root, "inside": inside, "outside": outside, "symlink": root / "escape"}


def run_app(query: dict[str, str] | None = None, page: str | None = None, user: dict | None = None):
    secrets = {"auth": AUTH, "access": {"allowed": ["@example.com"]}} if user is not None else None
    return run_dashboard(page, user=user, secrets=secrets, query=query)


def test_the_sidebar_offers_only_folders_inside_the_roots_and_no_path_box(dashboard_env, extra_root):
    at = run_app()
    assert not at.sidebar.text_input
    datasets = at.sidebar.selectbox(key="sidebar_dataset").options
    assert datasets == ["data", "shared/pets"]  # labels: root name / path below it
    assert at.sidebar.selectbox(key="sidebar_checkpoints").options == ["checkpoints"]


@pytest.mark.parametrize("target", ["/etc", "/", "../..", "symlink", "outside", "/no/such/folder", "root"])
def test_a_dataset_link_outside_the_offered_folders_gets_the_neutral_message(dashboard_env, extra_root, target):
    value = str(extra_root[target]) if target in extra_root else target
    at = run_app({"dataset": value})
    assert [e.value for e in at.error] == [NOT_OFFERED]
    assert at.sidebar.selectbox(key="sidebar_dataset").value == str(Path(dashboard_env["FUSION_DEMO_DATA"]).resolve())


@pytest.mark.parametrize("target", ["/tmp", "/", "{ckpt}/..", "{ckpt}/early"])
def test_a_checkpoint_folder_link_outside_the_offered_folders_gets_the_neutral_message(dashboard_env, target):
    at = run_app({"checkpoints": target.format(ckpt=dashboard_env["FUSION_CHECKPOINTS"])})
    assert [e.value for e in at.error] == [NOT_OFFERED]


def test_a_dataset_link_inside_a_root_picks_that_dataset(dashboard_env, extra_root):
    at = run_app({"dataset": str(extra_root["inside"])})
    assert not at.error
    assert at.sidebar.selectbox(key="sidebar_dataset").value == str(extra_root["inside"])


def test_train_writes_only_to_checkpoint_folders_of_the_server(dashboard_env, extra_root):
    at = run_app(page="train")
    assert not [w for w in at.text_input if w.key in ("train_out", "train_data")]  # picked, never typed
    assert at.selectbox(key="train_out").options == ["checkpoints"]
    assert at.selectbox(key="train_data").options == ["data", "shared/pets"]


def test_read_only_mode_shows_why_instead_of_the_training_form(dashboard_env, monkeypatch):
    monkeypatch.setenv("FUSION_READ_ONLY", "1")
    at = run_app(page="train")
    assert [i.value for i in at.info] == [READ_ONLY]
    assert "train_start" not in [b.key for b in at.button]
    assert any("read-only server" in c.value for c in at.sidebar.caption)


def write_run(runs: Path, run_id: str, owner: str, status: str = "queued") -> None:
    folder = runs / run_id
    folder.mkdir(parents=True)
    spec = {"data": "d", "out": "o", "models": ["early"], "encoders": {}, "epochs": 2, "encoder_epochs": 2}
    (folder / "run.json").write_text(
        json.dumps({"id": run_id, "owner": owner, "spec": spec, "command": [], "pid": None, "status": status,
                    "queued_at": "2026-01-01T12:00:00+00:00", "started_at": None, "ended_at": None, "exit_code": None})
    )  # fmt: skip


@pytest.fixture
def runs(dashboard_env, tmp_path, monkeypatch) -> Path:
    """A runs folder of this test's own (a queued run left in the shared one would be taken over
    by the next server a test starts)."""
    monkeypatch.setenv("FUSION_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_with_sign_in_a_user_sees_and_cancels_only_their_own_runs(runs):
    write_run(runs, "20260101-120000-aaaa", "alice@example.com")
    write_run(runs, "20260101-120001-bbbb", "bob@example.com")
    alice = {"is_logged_in": True, "email": "alice@example.com"}
    at = run_app(page="train", user=alice)
    labels = [e.label for e in at.expander]
    assert any("aaaa" in label for label in labels) and not any("bbbb" in label for label in labels)
    at.button(key="cancel_20260101-120000-aaaa").click()
    at.run()
    assert json.loads((runs / "20260101-120000-aaaa" / "run.json").read_text())["status"] == "cancelled"
    assert json.loads((runs / "20260101-120001-bbbb" / "run.json").read_text())["status"] == "queued"


def test_without_sign_in_every_run_is_listed(runs):
    write_run(runs, "20260101-130000-cccc", "alice@example.com", status="cancelled")
    write_run(runs, "20260101-130001-dddd", "local", status="cancelled")
    at = run_app(page="train")
    labels = " ".join(e.label for e in at.expander)
    assert "cccc" in labels and "dddd" in labels


def test_a_model_directory_typed_on_train_goes_through_the_same_check(runs):
    at = run_app(page="train")
    at.selectbox(key="train_encoder_text").set_value("hf:…")
    at.run()
    at.text_input(key="train_hf_text").input("/etc")
    at.run()
    at.button(key="train_start").click()
    at.run()
    assert [e.value for e in at.error] == [NOT_OFFERED]
    assert not runs.exists()  # refused before anything was written
