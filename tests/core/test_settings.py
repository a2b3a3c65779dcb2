"""One settings module: defaults under the project, every variable read, bad values refused clearly."""

import pytest

from core.errors import SettingsError
from core.settings import PROJECT_ROOT, Limits, Settings, settings


def test_defaults_live_in_the_project():
    s = Settings.from_env({})
    assert s.demo_data == PROJECT_ROOT / "demo_data" and s.checkpoints == PROJECT_ROOT / "checkpoints"
    assert s.embedding_cache_dir == PROJECT_ROOT / ".cache" / "embeddings"
    assert s.evaluation_cache_dir == PROJECT_ROOT / ".cache" / "evaluations"
    assert s.limits == Limits() and not s.read_only and not s.debug and s.device is None
    assert s.data_roots == (PROJECT_ROOT / "demo_data",) and s.checkpoint_roots == (PROJECT_ROOT / "checkpoints",)
    assert s.distributed.world_size == 1


def test_every_variable_is_read(tmp_path):
    env = {
        "FUSION_DEMO_DATA": str(tmp_path / "demo"),
        "FUSION_CHECKPOINTS": str(tmp_path / "ck"),
        "FUSION_CACHE_DIR": str(tmp_path / "cache"),
        "FUSION_RUNS": str(tmp_path / "runs"),
        "FUSION_DATA_ROOTS": f"{tmp_path / 'a'}:{tmp_path / 'b'}",
        "FUSION_CHECKPOINT_ROOTS": str(tmp_path / "c"),
        "FUSION_READ_ONLY": "yes",
        "FUSION_MAX_JOBS": "3",
        "FUSION_UPLOAD_MAX_MB": "7",
        "FUSION_DEVICE": "cpu",
        "FUSION_DEBUG": "1",
        "FUSION_MAX_BYTES": "1000",
        "FUSION_MAX_IMAGE_PIXELS": "2000",
        "FUSION_MAX_AUDIO_SECONDS": "2.5",
        "FUSION_MAX_TEXT_CHARS": "30",
        "WORLD_SIZE": "2",
        "RANK": "1",
        "LOCAL_RANK": "1",
    }
    s = Settings.from_env(env)
    assert s.limits == Limits(max_bytes=1000, max_image_pixels=2000, max_audio_seconds=2.5, max_text_chars=30)
    assert s.read_only and s.debug and s.device == "cpu" and s.max_jobs == 3 and s.upload_max_mb == 7
    assert s.runs_dir == tmp_path / "runs" and s.cache_dir == tmp_path / "cache"
    assert s.data_roots == (tmp_path / "demo", tmp_path / "a", tmp_path / "b")
    assert s.checkpoint_roots == (tmp_path / "ck", tmp_path / "c")
    assert (s.distributed.rank, s.distributed.world_size, s.distributed.local_rank) == (1, 2, 1)


@pytest.mark.parametrize("name, value", [("FUSION_MAX_BYTES", "50MB"), ("FUSION_MAX_JOBS", "-1"), ("FUSION_MAX_AUDIO_SECONDS", "ten")])
def test_a_bad_value_names_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_settings_follow_the_environment_now(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSION_MAX_TEXT_CHARS", "12")
    assert settings().limits.max_text_chars == 12
    monkeypatch.delenv("FUSION_MAX_TEXT_CHARS")
    assert settings().limits.max_text_chars == Limits().max_text_chars


def test_the_demo_folders_are_the_default_roots(tmp_path):
    s = Settings.from_env({"FUSION_DEMO_DATA": str(tmp_path / "demo"), "FUSION_CHECKPOINTS": str(tmp_path / "ck")})
    assert s.data_roots == (tmp_path / "demo",) and s.checkpoint_roots == (tmp_path / "ck",)


def test_the_dashboard_command_line_adds_roots_and_read_only(monkeypatch, tmp_path):
    from core.settings import apply_server_arguments

    monkeypatch.setenv("FUSION_DATA_ROOTS", str(tmp_path / "a"))
    # Set (empty) through monkeypatch, so what apply_server_arguments writes is undone afterwards.
    monkeypatch.setenv("FUSION_CHECKPOINT_ROOTS", "")
    monkeypatch.setenv("FUSION_READ_ONLY", "")
    argv = ["--data-root", str(tmp_path / "b"), f"--checkpoint-root={tmp_path / 'c'}", "--read-only"]
    apply_server_arguments(argv)
    apply_server_arguments(argv)  # the dashboard applies them on every rerun: nothing doubles
    s = settings()
    assert s.extra_data_roots == (tmp_path / "a", tmp_path / "b")
    assert s.extra_checkpoint_roots == (tmp_path / "c",) and s.read_only
    with pytest.raises(SettingsError, match="--data-root needs a folder"):
        apply_server_arguments(["--data-root"])
    with pytest.raises(SettingsError, match="Unknown dashboard argument"):
        apply_server_arguments(["--anything"])
