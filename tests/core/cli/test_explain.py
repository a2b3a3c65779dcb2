"""``python -m core explain --method integrated_gradients --sanity`` and ``python -m core trust``."""

import json

from core.cli import main
from core.data import load_dataset


def _sample_args(data) -> list[str]:
    record = next(r for r in load_dataset(data).split("test") if len(r.present()) == 3)
    return ["--image", str(record.image), "--audio", str(record.audio), "--text", record.text]


def test_explain_with_a_gradient_method_and_its_sanity_checks(small_demo_files, small_checkpoints, tmp_path, capsys):
    out = tmp_path / "why.json"
    args = ["explain", "--checkpoint", str(small_checkpoints["early"]), *_sample_args(small_demo_files.data)]
    assert main([*args, "--method", "integrated_gradients", "--ig-steps", "32", "--sanity", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("integrated_gradients: class ")
    assert "input_only             image  randomisation FAIL       (rho +1.00)" in printed
    data = json.loads(out.read_text())
    assert data["explanations"]["metadata"]["n_steps"] == 32
    assert set(data["sanity"]) == {"integrated_gradients", "input_only"}
    assert data["sanity"]["input_only"]["randomisation"]["passed"] == {"audio": False, "image": False, "text": False}
    # Grad-CAM on a text-only sample: a line that says why, not an error.
    assert main(["explain", "--checkpoint", str(small_checkpoints["early"]), "--text", "seven", "--method", "grad_cam"]) == 0
    assert "grad_cam: not applicable: Grad-CAM explains images" in capsys.readouterr().out


def test_trust_ranks_the_methods_of_a_checkpoint(small_demo_files, small_checkpoints, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "trust.json"
    args = ["trust", "--checkpoint", str(small_checkpoints["early"]), "--data", str(small_demo_files.data)]
    options = ["--samples", "3", "--sanity-samples", "2", "--methods", "integrated_gradients,grad_cam", "--json", str(out)]
    assert main([*args, *options]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Most believable on this checkpoint: audio: Integrated Gradients")
    report = json.loads(out.read_text())
    assert list(report["methods"]) == ["integrated_gradients", "grad_cam", "input_only"]
    assert report["recommendation"]["image"] in ("integrated_gradients", "grad_cam")
    assert list((tmp_path / "cache" / "trust").glob("*.json"))
    assert main([*args, "--methods", "nope"]) == 2
    assert "Unknown explanation method 'nope'" in capsys.readouterr().err
