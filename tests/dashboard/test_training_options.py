"""Imbalance in the dashboard: the Overview warns, the Train page offers the remedies and augmentation."""

from __future__ import annotations

from tests.dashboard.test_pages import assert_clean, open_page


def test_overview_warns_when_the_largest_class_is_five_times_the_smallest(dashboard_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FUSION_DATA_ROOTS", str(tmp_path))
    data = tmp_path / "skewed"
    data.mkdir()
    rows = [f"cat,{split},a cat {i}" for i in range(20) for split in ("train", "val", "test")]
    rows += [f"dog,{split},a dog {i}" for i in range(3) for split in ("train", "val", "test")]
    (data / "manifest.csv").write_text("label,split,text\n" + "\n".join(rows) + "\n")
    at = open_page("overview")
    assert not any("Imbalanced classes" in w.value for w in at.warning)  # the demo is balanced
    at.selectbox(key="sidebar_dataset").set_value(str(data.resolve()))
    at.run()
    assert_clean(at)
    assert any("the largest has 6.7× the training rows of the smallest" in w.value for w in at.warning)


def test_train_page_offers_augmentation_class_weights_and_the_balanced_sampler(dashboard_env):
    at = open_page("train")
    assert_clean(at)
    assert at.multiselect(key="train_augment").value == []
    assert at.selectbox(key="train_class_weights").value == "none"
    assert at.toggle(key="train_balanced_sampler").value is False
