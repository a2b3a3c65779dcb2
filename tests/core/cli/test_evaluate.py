"""``python -m core evaluate``: JSON and HTML out, one clear line for bad input."""

import json

from core.cli import main


def test_cli_writes_json_and_html_and_refuses_bad_input(small_demo_files, small_checkpoints, tmp_path, capsys):
    out, html = tmp_path / "e.json", tmp_path / "r.html"
    args = ["evaluate", "--checkpoint", str(small_checkpoints["early"]), "--checkpoint", str(small_checkpoints["late"])]
    code = main(
        [
            *args,
            "--data",
            str(small_demo_files.data),
            "--json",
            str(out),
            "--html",
            str(html),
            "--no-robustness",
            "--bootstrap",
            "20",
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["checkpoints"]] == ["early", "late"] and len(data["pairwise"]) == 1
    assert data["checkpoints"][0]["missing_modality"] == [] and html.stat().st_size > 1_000_000
    assert main([*args, "--data", str(tmp_path / "nowhere")]) == 2
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--data", str(small_demo_files.data)]) == 2
    assert main([*args, "--data", str(small_demo_files.data), "--bootstrap", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and "Traceback" not in err
