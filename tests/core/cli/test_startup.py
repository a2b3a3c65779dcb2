"""The commands that need no model start without importing the model stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from core.settings import PROJECT_ROOT
from tests.core.data.test_manifest import write_csv, write_png, write_wav

HEAVY = ("torch", "sklearn", "scipy", "shap", "captum")

PROBE = textwrap.dedent(
    """
    import json, sys
    from core.cli import main
    code = main(["validate", "--data", sys.argv[1]])
    print(json.dumps({"code": code, "imported": [m for m in sys.argv[2:] if m in sys.modules]}))
    """
)


def test_validate_and_the_parser_do_not_import_torch(tmp_path):
    """Every command's parser is built first: choices and help texts come from names known without
    torch (fusions, explainers, compressors), not from the classes (4-5 s on 2 cores, before)."""
    write_png(tmp_path / "ds" / "a.png")
    write_wav(tmp_path / "ds" / "a.wav")
    write_csv(tmp_path / "ds", "id,label,image,audio,text\nr0,c0,a.png,a.wav,hello\n")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "ds"), *HEAVY],
        cwd=PROJECT_ROOT,
        env={**os.environ, "FUSION_CACHE_DIR": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"code": 0, "imported": []}, result.stderr
