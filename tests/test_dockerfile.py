"""The Dockerfile installs what ``make setup`` installs, runs as a non-root user and is checkable.

CI cannot build the image (no Docker daemon), so these tests hold the Dockerfile to the
Makefile: a requirement file added to one and not the other fails here.
"""

from __future__ import annotations

import re
import shlex

from core.settings import PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())
    ]


def _setup_recipe() -> list[str]:
    """The shell lines of the Makefile rule that ``make setup`` runs (the ``.installed`` stamp)."""
    recipe, inside = [], False
    for line in MAKEFILE.splitlines():
        if re.match(r"^\$\(VENV\)/\.installed\s*:", line):
            inside = True
        elif inside and line.startswith("\t"):
            recipe.append(line.strip())
        elif inside and line.strip():
            break
    assert recipe, "the Makefile has no $(VENV)/.installed rule"
    return recipe


def _requirement_installs(commands: list[str]) -> set[tuple[str, bool]]:
    """``(requirements file, installed with --no-deps)`` for every ``pip install -r`` in ``commands``."""
    found = set()
    for command in commands:
        for part in command.split("&&"):
            words = shlex.split(part)
            if "pip" not in " ".join(words) or "install" not in words:
                continue
            for i, word in enumerate(words[:-1]):
                if word in ("-r", "--requirement"):
                    found.add((words[i + 1], "--no-deps" in words))
    return found


def test_docker_installs_the_same_requirement_files_as_make_setup():
    make = _requirement_installs(_setup_recipe())
    docker = _requirement_installs([args for name, args in _instructions() if name == "RUN"])

    assert make == {("requirements.txt", False), ("requirements-nodeps.txt", True)}
    assert docker == make
    copied = " ".join(args for name, args in _instructions() if name == "COPY")
    assert all(path in copied for path, _ in make)


def test_docker_makes_the_project_importable_like_the_editable_install():
    # `make setup` runs `pip install -e .`; the image puts /app on the path instead.
    assert any("-e ." in line for line in _setup_recipe())
    env = " ".join(args for name, args in _instructions() if name == "ENV")
    assert "PYTHONPATH=/app" in env
    copied = " ".join(args for name, args in _instructions() if name == "COPY")
    for package in ("core", "dashboard", "pages"):
        assert re.search(rf"(^|\s){package}\s", copied), f"{package}/ is not copied into the image"


def test_docker_runs_as_a_non_root_user():
    users = [args.split(":")[0] for name, args in _instructions() if name == "USER"]
    assert users, "no USER instruction: the container would run as root"
    assert users[-1] not in ("root", "0")


def test_docker_healthcheck_exposed_port_multi_stage_and_cuda_build_arg():
    instructions = _instructions()
    healthchecks = [args for name, args in instructions if name == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/_stcore/health" in healthchecks[0] and ":8501" in healthchecks[0]
    assert ("EXPOSE", "8501") in instructions
    assert sum(name == "FROM" for name, _ in instructions) >= 2
    assert any(name == "ARG" and args.startswith("TORCH_INDEX=") and "/whl/cpu" in args for name, args in instructions)
    assert any(name == "RUN" and "${TORCH_INDEX}" in args for name, args in instructions)
    assert any(name == "RUN" and "python -m core demo" in args for name, args in instructions)


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    ignored = set((PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", ".git", "demo_data", "checkpoints", ".cache"} <= ignored


def test_docker_image_is_read_only_unless_turned_off_and_never_holds_secrets():
    instructions = _instructions()
    demo = next(i for i, (name, args) in enumerate(instructions) if name == "RUN" and "python -m core demo" in args)
    read_only = [i for i, (name, args) in enumerate(instructions) if name == "ENV" and "FUSION_READ_ONLY=1" in args]
    assert read_only and read_only[-1] > demo  # set after the demo build, which writes checkpoints
    assert not any(name == "ENV" and "FUSION_READ_ONLY=0" in args for name, args in instructions[read_only[-1] :])
    ignored = set((PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert ".streamlit/secrets.toml" in ignored
