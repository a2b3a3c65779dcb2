"""Every ``FUSION_*`` setting, the default folders and the decoding limits, in one place.

Nothing else in the project reads ``os.environ``. :func:`settings` reads the environment
each time it is called (a handful of lookups), so a test or a server that changes a
variable is seen at once; :class:`Settings` is an immutable snapshot.

=============================  =====================================================
variable                       meaning (default)
=============================  =====================================================
``FUSION_DEMO_DATA``           the demo dataset folder (``demo_data/`` in the project)
``FUSION_CHECKPOINTS``         the default checkpoint folder (``checkpoints/``)
``FUSION_CACHE_DIR``           embedding, evaluation and projection caches (``.cache/``)
``FUSION_RUNS``                training run folders (``runs/``)
``FUSION_RETRIEVAL``           cross-modal retrieval models (``retrieval/``)
``FUSION_DATA_ROOTS``          extra folders, ``:``-separated, whose datasets the dashboard
                               may open (the demo folder is always one)
``FUSION_CHECKPOINT_ROOTS``    extra folders, ``:``-separated, where checkpoints may be read
                               and written (the default checkpoint folder is always one)
``FUSION_READ_ONLY``           ``1``: no training or other writes but caches
``FUSION_MAX_JOBS``            heavy jobs (explain, evaluate, train) run at once (2)
``FUSION_WORKERS``             worker processes that decode and preprocess files for
                               validation, embedding, training and evaluation (one per
                               CPU core; 0: in the calling process)
``FUSION_UPLOAD_MAX_MB``       largest upload the dashboard accepts per widget (50)
``FUSION_DEVICE``              ``cuda``, ``mps`` or ``cpu`` (best available)
``FUSION_DEBUG``               ``1``: the CLI prints tracebacks behind its one-line errors
``FUSION_MAX_BYTES``           largest file or upload decoded, bytes (50 MiB)
``FUSION_MAX_IMAGE_PIXELS``    largest image, width x height (40 MP)
``FUSION_MAX_AUDIO_SECONDS``   longest audio clip (60 s)
``FUSION_MAX_TEXT_CHARS``      longest text (10,000 characters)
=============================  =====================================================

The dashboard's command line adds roots the same way (:func:`apply_server_arguments`), and
:mod:`core.roots` is what checks a path against them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository: the default home of the demo, checkpoints, caches and runs."""

_TRUE = {"1", "true", "yes", "on"}

LOCAL_USER = "local"
"""Who started a job when nobody signs in (the CLI, the local demo)."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds applied to every decoded input.

    Args:
        max_bytes: largest file or upload accepted, in bytes.
        max_image_pixels: largest width*height decoded (guards decompression bombs).
        max_audio_seconds: longest audio clip decoded.
        max_text_chars: longest text accepted.
    """

    max_bytes: int = 50 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_audio_seconds: float = 60.0
    max_text_chars: int = 10_000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class DistributedEnv:
    """What ``torchrun`` tells each process it starts (one process without it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


@dataclass(frozen=True)
class Settings:
    """A snapshot of every setting; see the module docstring for the variables behind them."""

    demo_data: Path = PROJECT_ROOT / "demo_data"
    checkpoints: Path = PROJECT_ROOT / "checkpoints"
    cache_dir: Path = PROJECT_ROOT / ".cache"
    runs_dir: Path = PROJECT_ROOT / "runs"
    retrieval_dir: Path = PROJECT_ROOT / "retrieval"
    extra_data_roots: tuple[Path, ...] = ()
    extra_checkpoint_roots: tuple[Path, ...] = ()
    read_only: bool = False
    max_jobs: int = 2
    workers: int | None = None
    """``None``: one per CPU core this process may use."""
    upload_max_mb: int = 50
    device: str | None = None
    debug: bool = False
    hf_offline: bool = False
    limits: Limits = field(default_factory=Limits)
    distributed: DistributedEnv = field(default_factory=DistributedEnv)

    @property
    def embedding_cache_dir(self) -> Path:
        return self.cache_dir / "embeddings"

    @property
    def validation_cache_dir(self) -> Path:
        """File checks of dataset validation, by (path, size, mtime): see :mod:`core.data.file_checks`."""
        return self.cache_dir / "validation"

    @property
    def evaluation_cache_dir(self) -> Path:
        return self.cache_dir / "evaluations"

    @property
    def index_cache_dir(self) -> Path:
        """Nearest-neighbour indices, beside the embeddings they search."""
        return self.cache_dir / "indices"

    @property
    def projection_cache_dir(self) -> Path:
        return self.cache_dir / "projections"

    @property
    def data_roots(self) -> tuple[Path, ...]:
        """Folders whose datasets may be opened: the demo folder, then the configured ones."""
        return _unique((self.demo_data, *self.extra_data_roots))

    @property
    def checkpoint_roots(self) -> tuple[Path, ...]:
        """Folders holding checkpoint folders: the default one, then the configured ones."""
        return _unique((self.checkpoints, *self.extra_checkpoint_roots))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default ``os.environ``).

        Raises:
            SettingsError: a variable whose value is not of the expected kind.
        """
        env = os.environ if environ is None else environ
        default = cls()
        limits = Limits(
            max_bytes=_number(env, "FUSION_MAX_BYTES", default.limits.max_bytes, int),
            max_image_pixels=_number(env, "FUSION_MAX_IMAGE_PIXELS", default.limits.max_image_pixels, int),
            max_audio_seconds=_number(env, "FUSION_MAX_AUDIO_SECONDS", default.limits.max_audio_seconds, float),
            max_text_chars=_number(env, "FUSION_MAX_TEXT_CHARS", default.limits.max_text_chars, int),
        )
        return cls(
            demo_data=_path(env, "FUSION_DEMO_DATA", default.demo_data),
            checkpoints=_path(env, "FUSION_CHECKPOINTS", default.checkpoints),
            cache_dir=_path(env, "FUSION_CACHE_DIR", default.cache_dir),
            runs_dir=_path(env, "FUSION_RUNS", default.runs_dir),
            retrieval_dir=_path(env, "FUSION_RETRIEVAL", default.retrieval_dir),
            extra_data_roots=_paths(env, "FUSION_DATA_ROOTS"),
            extra_checkpoint_roots=_paths(env, "FUSION_CHECKPOINT_ROOTS"),
            read_only=_flag(env, "FUSION_READ_ONLY"),
            max_jobs=_number(env, "FUSION_MAX_JOBS", default.max_jobs, int),
            workers=_number(env, "FUSION_WORKERS", None, int),
            upload_max_mb=_number(env, "FUSION_UPLOAD_MAX_MB", default.upload_max_mb, int),
            device=(env.get("FUSION_DEVICE") or "").strip() or None,
            debug=_flag(env, "FUSION_DEBUG"),
            hf_offline=_flag(env, "HF_HUB_OFFLINE"),
            limits=limits,
            distributed=DistributedEnv(
                rank=_number(env, "RANK", 0, int),
                world_size=_number(env, "WORLD_SIZE", 1, int),
                local_rank=_number(env, "LOCAL_RANK", 0, int),
            ),
        )


def settings() -> Settings:
    """The settings of this process, read from its environment now."""
    return Settings.from_env()


SERVER_ARGUMENTS = {"--data-root": "FUSION_DATA_ROOTS", "--checkpoint-root": "FUSION_CHECKPOINT_ROOTS"}
"""The dashboard's own command line (``streamlit run dashboard/app.py -- --data-root /srv/data``)."""


def apply_server_arguments(argv: list[str]) -> None:
    """Add the roots given on the dashboard's command line to this process's settings.

    ``--data-root PATH`` and ``--checkpoint-root PATH`` (each repeatable) extend
    ``FUSION_DATA_ROOTS`` / ``FUSION_CHECKPOINT_ROOTS`` and ``--read-only`` sets
    ``FUSION_READ_ONLY``, in this process's environment, so every later :func:`settings`
    call and every training process it starts sees the same roots. Applying the same
    arguments twice changes nothing (the dashboard applies them on every rerun).

    Raises:
        SettingsError: an unknown argument, or a root option without a path.
    """
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, _, value = arg.partition("=")
        if arg == "--read-only":
            os.environ["FUSION_READ_ONLY"] = "1"
        elif name in SERVER_ARGUMENTS:
            if not value:
                i += 1
                value = argv[i] if i < len(argv) else ""
            if not value.strip():
                raise SettingsError(f"{name} needs a folder.")
            variable = SERVER_ARGUMENTS[name]
            known = [p for p in (os.environ.get(variable) or "").split(os.pathsep) if p.strip()]
            os.environ[variable] = os.pathsep.join(dict.fromkeys([*known, value.strip()]))
        else:
            raise SettingsError(
                f"Unknown dashboard argument {arg!r}; the dashboard accepts --data-root PATH, "
                "--checkpoint-root PATH and --read-only."
            )
        i += 1


def configure_process() -> None:
    """Environment defaults and thread limits for a process that computes; entry points call it.

    Importing :mod:`core` changes nothing; the CLI (``python -m core``), the dashboard and
    the benchmarks call this first, because:

    - libgomp's default busy-waiting makes every op ~15x slower as soon as another process
      (the dashboard server, a training run, a browser) wants the same cores (measured on
      2 cores: 7.2 s vs 1.2 s for the same 5 CNN training steps);
    - numpy's OpenBLAS only ever sees small matrices here (spectrograms, metrics, LIME's
      ridge fits), where its threaded path is slower, and ~1000x slower when the other
      cores are busy (a 40x257 @ 257x101 product took 22 ms instead of 0.03 ms). torch
      keeps its own thread pool, so this does not touch model speed. The variables cover
      libraries loaded from now on; ``threadpool_limits`` covers those a host (Streamlit,
      a notebook) loaded before.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy  # noqa: F401  (loads its OpenBLAS so the limit below applies to it)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def _unique(paths: tuple[Path, ...]) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(Path(p).expanduser().resolve() for p in paths))


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = (env.get(name) or "").strip()
    return Path(value).expanduser() if value else default


def _paths(env: Mapping[str, str], name: str) -> tuple[Path, ...]:
    return tuple(Path(part).expanduser() for part in (env.get(name) or "").split(os.pathsep) if part.strip())


def _flag(env: Mapping[str, str], name: str) -> bool:
    return (env.get(name) or "").strip().lower() in _TRUE


def _number(env: Mapping[str, str], name: str, default, kind: type):
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise SettingsError(f"{name} must be a {'whole ' if kind is int else ''}number, not {value!r}.") from None
    if number < 0:
        raise SettingsError(f"{name} must not be negative, got {value!r}.")
    return number
