"""Test-wide settings and the one shared small demo (dataset + quickly trained checkpoints).

The small demo is built once per test session (about a minute on two CPU cores) and used
by core, dashboard and benchmark tests alike, so no test depends on the full demo.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import authlib.deprecate  # noqa: E402, F401
import pytest  # noqa: E402

from core.settings import configure_process  # noqa: E402

configure_process()  # what every entry point does: passive OpenMP waits, single-threaded BLAS
# authlib.deprecate sets an "always" filter for Authlib's deprecations when first imported. Imported
# here, before pytest applies its filters to each test, pyproject's ignore of the authlib.jose
# notice (raised inside oidc-provider-mock, not by our code) holds.

FIXTURE_MODELS = ["early", "late", "image-only"]
N_SOURCE = 60
"""Source images of the small demo (about 95 samples)."""


@dataclass
class SmallDemo:
    """The small demo on disk: ``data`` (dataset folder), ``checkpoints`` (folder of
    :data:`FIXTURE_MODELS`) and ``cache`` (its embedding and evaluation caches)."""

    data: Path
    checkpoints: Path
    cache: Path

    def env(self, root: Path) -> dict[str, str]:
        """Variables pointing a dashboard or CLI process at this demo, with private caches under ``root``."""
        return {
            "FUSION_DEMO_DATA": str(self.data),
            "FUSION_CHECKPOINTS": str(self.checkpoints),
            "FUSION_CACHE_DIR": str(root / "cache"),
            "FUSION_RUNS": str(root / "runs"),
        }


def fast_config():
    from core.train import TrainConfig

    return TrainConfig(encoder_epochs=2, fusion_epochs=3, patience=2, batch_size=32, seed=0)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's caches."""
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def small_demo_files(tmp_path_factory: pytest.TempPathFactory) -> SmallDemo:
    from core.data import build_demo, load_dataset
    from core.encoders.cache import EmbeddingCache
    from core.train import Trainer

    root = tmp_path_factory.mktemp("small-demo")
    demo = SmallDemo(root / "data", root / "checkpoints", root / "cache")
    build_demo(demo.data, seed=0, progress=False, n_source=N_SOURCE)
    cache = EmbeddingCache(demo.cache / "embeddings")
    Trainer(load_dataset(demo.data), demo.checkpoints, fast_config(), cache=cache, show_progress=False).run(
        FIXTURE_MODELS
    )
    return demo


@pytest.fixture(scope="session")
def small_demo(small_demo_files: SmallDemo):
    """The small demo dataset, loaded."""
    from core.data import load_dataset

    return load_dataset(small_demo_files.data)


@pytest.fixture(scope="session")
def small_checkpoints(small_demo_files: SmallDemo) -> dict[str, Path]:
    """Checkpoint name -> folder, for :data:`FIXTURE_MODELS`."""
    return {name: small_demo_files.checkpoints / name for name in FIXTURE_MODELS}


@pytest.fixture(scope="session")
def every_fusion_demo(small_demo_files: SmallDemo, tmp_path_factory: pytest.TempPathFactory) -> SmallDemo:
    """The small demo with a checkpoint of EVERY fusion strategy (and the baselines), in a
    folder of its own: the small demo's checkpoints copied, the missing fusion heads trained
    on its encoders (seconds; the encoders are reused, not retrained)."""
    import shutil

    from core.data import load_dataset
    from core.encoders.cache import EmbeddingCache
    from core.fusion import FUSION_NAMES
    from core.train import Trainer

    root = tmp_path_factory.mktemp("every-fusion")
    demo = SmallDemo(small_demo_files.data, root / "checkpoints", small_demo_files.cache)
    shutil.copytree(small_demo_files.checkpoints, demo.checkpoints)
    cache = EmbeddingCache(demo.cache / "embeddings")
    Trainer(
        load_dataset(demo.data), demo.checkpoints, fast_config(), cache=cache, show_progress=False, resume=True
    ).run(list(FUSION_NAMES))
    return demo


def add_tasks(source: Path, target: Path) -> Path:
    """A copy of the demo dataset at ``source`` with two more tasks: ``label:parity`` (odd or
    even; every fifth row unlabelled) and the multi-label ``labels:tags`` (prime, square, big)."""
    import csv
    import shutil

    shutil.copytree(source, target)
    with open(target / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        digit = int(row["label"])
        row["label:parity"] = "" if i % 5 == 4 else ("odd" if digit % 2 else "even")
        tags = [name for name, has in (("prime", digit in (2, 3, 5, 7)), ("square", digit in (0, 1, 4, 9)), ("big", digit >= 5)) if has]
        row["labels:tags"] = "|".join(tags) or "-"
    with open(target / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    (target / "demo.json").unlink(missing_ok=True)
    return target


@pytest.fixture(scope="session")
def multitask_demo(small_demo_files: SmallDemo, tmp_path_factory: pytest.TempPathFactory):
    """The small demo with three tasks (digit, parity, tags) and checkpoints trained on all of them:
    ``(dataset, {name: checkpoint folder})`` for early, late, their single-task parity copies and image-only."""
    from core.data import load_dataset
    from core.encoders.cache import EmbeddingCache
    from core.train import Trainer

    root = tmp_path_factory.mktemp("multitask")
    dataset = load_dataset(add_tasks(small_demo_files.data, root / "data"))
    names = ["early", "late", "early.parity", "image-only"]
    cache = EmbeddingCache(root / "embeddings")
    results = Trainer(dataset, root / "checkpoints", fast_config(), cache=cache, show_progress=False).run(names)
    return dataset, {r.name: r.path for r in results}
