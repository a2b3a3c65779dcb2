"""The compress, augment and imbalance benchmark sections in quick mode, and their tables."""

from __future__ import annotations

import pytest

from bench import augment, compress, imbalance
from bench.table import markdown_table


@pytest.fixture(scope="module")
def options(small_demo, small_checkpoints) -> dict:
    checkpoints = next(iter(small_checkpoints.values())).parent
    return {"quick": True, "data": str(small_demo.root), "checkpoints": str(checkpoints)}


def test_compress_measures_every_method_beside_its_parent(options, tmp_path):
    result = compress.run({**options, "names": ["early"], "out": str(tmp_path)})
    variants = result["checkpoints"]["early"]
    assert list(variants) == ["parent", *compress.METHODS]
    parent = variants["parent"]
    assert parent["model_batch1_over_parent"] == 1.0 and parent["accuracy_lost_points"] == 0.0
    assert variants["int8"]["disk_bytes"] < 0.45 * parent["disk_bytes"]
    assert variants["int8"]["parameter_bytes"] < 0.45 * parent["parameter_bytes"]
    assert variants["fp16"]["disk_bytes"] < 0.55 * parent["disk_bytes"]
    assert variants["fp16"]["parameter_bytes"] == parent["parameter_bytes"]  # widened back at load
    assert variants["distill"]["fusion_hidden"] == parent["fusion_hidden"] // 2
    assert variants["int8"]["compression"]["parent_name"] == "early"
    for v in variants.values():
        assert v["model"]["batch_1_ms"] > 0 and v["fusion"]["large_batch_ms"] > 0
        assert v["of_parent"] == pytest.approx(v["test_accuracy"] / parent["test_accuracy"])
    widths = {(r["width"], r["batch"]) for r in result["linear_break_even"]}
    assert widths == {(w, b) for w in compress.WIDTHS[:3] for b in (1, result["large_batch"])}
    assert (tmp_path / "early-int8" / "card.json").is_file()
    text = markdown_table({"environment": {}, "sections": {"compress": {"ok": True, "seconds": 1, **result}}})
    assert "`early-int8`" in text and "Linear d×d" in text


def test_augment_compares_plain_and_augmented_training_with_the_same_seed(options, small_demo):
    result = augment.run({**options, "models": ["text-only"]})
    assert result["training_rows"] < 0.3 * result["full_training_rows"]
    plain, augmented = result["runs"]["plain/seed0"]["text-only"], result["runs"]["augmented/seed0"]["text-only"]
    assert result["gain_points"]["text-only"]["seed0"] == pytest.approx(100 * (augmented["test_accuracy"] - plain["test_accuracy"]))
    assert set(plain["recall"]) <= set(small_demo.classes)
    text = markdown_table({"environment": {}, "sections": {"augment": {"ok": True, "seconds": 1, **result}}})
    assert "plain → augmented" in text


def test_imbalance_cuts_one_class_and_scores_each_remedy(options):
    result = imbalance.run({**options, "models": ["text-only"]})
    counts = result["train_counts"]
    assert counts[result["minority"]] < 0.35 * max(counts.values())
    assert list(result["arms"]) == list(imbalance.ARMS)
    for scored in result["arms"].values():
        s = scored["text-only"]
        assert 0.0 <= s["minority_recall"] <= 1.0 and s["minority_recall"] == s["recall"][result["minority"]]
    text = markdown_table({"environment": {}, "sections": {"imbalance": {"ok": True, "seconds": 1, **result}}})
    assert "Minority recall" in text
