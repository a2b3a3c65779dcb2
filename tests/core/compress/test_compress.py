"""Compression end to end on the small demo: int8, fp16, pruning and distillation give loadable
checkpoints that name their parent, and a card whose provenance was edited is refused."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from core.card import list_checkpoints, read_card
from core.checkpoints import load_checkpoint
from core.cli import main
from core.compress import CompressOptions, compress_checkpoint, default_name, parse_method
from core.compress.storage import footprint
from core.embeddings import classify_embedded, embed_records
from core.errors import AccessError, CheckpointError, CompressionError

QUICK = CompressOptions(epochs=3, seed=0)


@pytest.fixture(scope="module")
def compressed(small_checkpoints, tmp_path_factory):
    """``{method: CompressResult}`` of the small demo's early checkpoint, in a folder beside a copy of it."""
    root = tmp_path_factory.mktemp("compressed")
    parent = root / "early"
    shutil.copytree(small_checkpoints["early"], parent)
    return {
        method: compress_checkpoint(parent, method, options=QUICK)
        for method in ("int8", "fp16", "prune:0.5", "distill")
    }


def test_every_method_writes_a_loadable_checkpoint_naming_its_parent(compressed, small_checkpoints):
    parent = read_card(small_checkpoints["early"])
    for method, result in compressed.items():
        card = read_card(result.path)
        assert card.compression.method == parse_method(method)[0]
        assert card.compression.parent_name == "early"
        assert card.compression.parent_sha256 == parent.sha256
        assert card.name == result.path.name == default_name("early", method)
        assert set(card.metrics) == {"val", "test"} and card.metrics["test"]["n"] == parent.metrics["test"]["n"]
        loaded = load_checkpoint(result.path)
        assert loaded.model.classes == parent.classes
    listed = {i.name: i for i in list_checkpoints(compressed["int8"].path.parent)}
    assert listed["early-int8"].parent == "early" and listed["early-int8"].compression == "int8"
    assert listed["early"].parent is None


def test_int8_is_smaller_and_predicts_like_its_parent(compressed, small_checkpoints, small_demo):
    parent = load_checkpoint(small_checkpoints["early"])
    int8 = load_checkpoint(compressed["int8"].path)
    assert int8.model.device.type == "cpu"
    disk = {p: (p / "model.safetensors").stat().st_size for p in (parent.path, int8.path)}
    assert disk[int8.path] < 0.45 * disk[parent.path]
    assert footprint(int8.model)[1] < 0.45 * footprint(parent.model)[1]
    assert footprint(int8.model)[0] == parent.model.parameter_count()
    records = small_demo.split("test")
    ours = classify_embedded(int8.model, embed_records(int8.model, records))
    theirs = classify_embedded(parent.model, embed_records(parent.model, records))
    assert np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.95
    assert abs(compressed["int8"].metrics["test"]["accuracy"] - parent.card.metric("test", "accuracy")) <= 0.05


def test_fp16_halves_the_file_and_holds_half_precision_values(compressed, small_checkpoints):
    parent = load_checkpoint(small_checkpoints["early"])
    half = load_checkpoint(compressed["fp16"].path)
    size = {p: (p / "model.safetensors").stat().st_size for p in (parent.path, half.path)}
    assert size[half.path] < 0.55 * size[parent.path]
    weight = half.model.fusion.mix[0].weight
    assert weight.dtype == torch.float32
    assert torch.equal(weight, parent.model.fusion.mix[0].weight.half().float())


def test_prune_zeroes_the_fraction_of_fusion_weights(compressed):
    card = read_card(compressed["prune:0.5"].path)
    assert card.compression.parameters["fraction"] == 0.5
    assert card.compression.parameters["zeros"] >= 0.5 * card.compression.parameters["pruned_of"]
    model = load_checkpoint(compressed["prune:0.5"].path).model
    weights = [p for n, p in model.named_parameters() if not n.startswith("encoders.") and p.dim() >= 2]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == card.compression.parameters["zeros"]
    assert 1 <= card.training.epochs_run <= 3


def test_distill_trains_a_half_width_student_on_the_teacher_encoders(compressed, small_checkpoints):
    teacher = load_checkpoint(small_checkpoints["early"])
    student = load_checkpoint(compressed["distill"].path)
    card = student.card
    assert card.fusion_config["hidden"] == teacher.card.fusion_config["hidden"] // 2
    assert card.compression.parameters | {"temperature": 4.0, "alpha": 0.7} == card.compression.parameters
    assert card.compression.parameters["student_fusion"] == "early"
    assert student.model.parameter_count() < teacher.model.parameter_count()
    for m in teacher.model.modalities:  # the same encoders, so the same cached embeddings
        assert student.model.encoders[m].cache_id() == teacher.model.encoders[m].cache_id()


def _edit_card(src, dst, change):
    shutil.copytree(src, dst)
    card = json.loads((dst / "card.json").read_text())
    change(card)
    (dst / "card.json").write_text(json.dumps(card))
    return dst


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["compression"].update(parent_sha256="0" * 64),
        lambda c: c["compression"].update(parent_name="gated"),
        lambda c: c["compression"].update(method="fp16"),
        lambda c: c["compression"]["parameters"].update(fraction=0.1),
        lambda c: c.update(compression=None),
    ],
    ids=["parent-hash", "parent-name", "method", "parameters", "removed"],
)
def test_a_card_whose_provenance_was_edited_is_refused(compressed, tmp_path, change):
    path = _edit_card(compressed["prune:0.5"].path, tmp_path / "edited", change)
    with pytest.raises(CheckpointError, match="compression record was changed after saving"):
        load_checkpoint(path)


def test_claiming_a_compression_the_weights_never_had_is_refused(compressed, small_checkpoints, tmp_path):
    record = read_card(compressed["int8"].path).compression.to_json()
    path = _edit_card(small_checkpoints["early"], tmp_path / "claims-int8", lambda c: c.update(compression=record))
    with pytest.raises(CheckpointError, match="compression record was changed after saving"):
        load_checkpoint(path)
    storage = _edit_card(compressed["int8"].path, tmp_path / "storage", lambda c: c["compression"].update(storage="float32"))
    with pytest.raises(CheckpointError, match="changed after saving"):
        load_checkpoint(storage)


def test_bad_requests_are_refused_with_a_reason(compressed, small_checkpoints, tmp_path):
    with pytest.raises(CompressionError, match="Unknown compression method 'zip'"):
        compress_checkpoint(small_checkpoints["early"], "zip")
    with pytest.raises(CompressionError, match="strictly between 0 and 1"):
        compress_checkpoint(small_checkpoints["early"], "prune:1.5")
    with pytest.raises(CompressionError, match="already int8"):
        compress_checkpoint(compressed["int8"].path, "prune:0.5", tmp_path / "again")
    with pytest.raises(CompressionError, match="is the parent"):
        compress_checkpoint(small_checkpoints["early"], "fp16", small_checkpoints["early"])
    with pytest.raises(CompressionError, match="Unknown student fusion"):
        compress_checkpoint(small_checkpoints["early"], "distill", options=CompressOptions(student_fusion="nope"))


def test_cli_compress_prints_the_parent_and_accuracies(small_checkpoints, tmp_path, capsys):
    out = tmp_path / "late-fp16"
    assert main(["compress", "--checkpoint", str(small_checkpoints["late"]), "--method", "fp16", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "late-fp16: fp16 of late" in text and "test accuracy" in text
    assert main(["compress", "--checkpoint", str(small_checkpoints["late"]), "--method", "bogus", "--out", str(out)]) == 2
    assert "Unknown compression method" in capsys.readouterr().err


def test_compare_places_the_compressed_checkpoint_beside_its_parent(compressed, small_checkpoints, small_demo):
    from core.evaluate import EvaluationOptions, evaluate
    from core.evaluate.tradeoffs import tradeoff_points

    options = EvaluationOptions(bootstrap=20, robustness=False, analysis=False, large_batch=8)
    report = evaluate([small_checkpoints["early"], compressed["int8"].path], small_demo, "test", options)
    parent, int8 = report.checkpoints
    assert (int8.compression, int8.parent, int8.parent_sha256) == ("int8", "early", parent.sha256)
    assert parent.cost.disk_bytes == (small_checkpoints["early"] / "model.safetensors").stat().st_size
    assert int8.cost.disk_bytes < 0.45 * parent.cost.disk_bytes
    assert int8.cost.parameter_bytes < 0.45 * parent.cost.parameter_bytes
    assert int8.cost.parameters == parent.cost.parameters
    points = {p.name: p for p in tradeoff_points(report.checkpoints)}
    assert points["early-int8"].parent == "early"
    assert points["early-int8"].on_front["disk_mb"] and points["early-int8"].on_front["memory_mb"]


def test_a_background_compression_run_is_listed_beside_training_runs(small_checkpoints, tmp_path, monkeypatch):
    from core.compress.runs import CompressSpec
    from core.train.runs import list_runs, start_run
    from tests.core.train.test_runs import wait_until_ended

    # The parent's folder and the output's are this server's checkpoint roots.
    monkeypatch.setenv("FUSION_CHECKPOINT_ROOTS", f"{small_checkpoints['late'].parent}:{tmp_path / 'ckpt'}")
    out = tmp_path / "ckpt" / "late-int8"
    spec = CompressSpec(checkpoint=str(small_checkpoints["late"]), method="int8", out=str(out))
    assert spec.command(tmp_path / "e.jsonl")[3:5] == ["compress", "--checkpoint"]
    run = start_run(spec, tmp_path / "runs")
    ended = wait_until_ended(run.path, timeout=300)
    assert ended.status == "finished", ended.log_tail
    assert ended.spec == replace(spec, checkpoint=str(small_checkpoints["late"].resolve()), out=str(out.resolve()))
    assert ended.saved_requested == ["late-int8"] and ended.progress == 1.0
    assert [r.spec.kind for r in list_runs(tmp_path / "runs")] == ["compress"]
    assert read_card(out).compression.parent_name == "late"


def test_a_compression_outside_the_roots_is_refused(small_checkpoints, tmp_path, monkeypatch):
    from core.compress.runs import CompressSpec
    from core.train.runs import start_run

    monkeypatch.setenv("FUSION_CHECKPOINT_ROOTS", str(small_checkpoints["late"].parent))
    spec = CompressSpec(checkpoint=str(small_checkpoints["late"]), method="int8", out=str(tmp_path / "elsewhere"))
    with pytest.raises(AccessError, match="not available on this server"):
        start_run(spec, tmp_path / "runs")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "elsewhere").exists()
