"""Training: stage 1 trains the built-in encoders (the ``<modality>-only`` baselines), stage 2
trains every fusion strategy on the same frozen encoders.

=============  ============================================================
module         what it holds
=============  ============================================================
``config``     :class:`TrainConfig`, :class:`TrainResult`, model names
``trainer``    :class:`Trainer`: the two stages, checkpoints and their cards
``loop``       the epoch loop (AdamW, early stopping, DDP under torchrun)
``resume``     per-epoch state on disk, so ``--resume`` continues a killed run
``events``     progress events as JSON lines (written by a run, read by the dashboard)
``runs``       background training runs: start, list, follow, cancel
=============  ============================================================
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.train.config import BASELINE_SUFFIX, TrainConfig, TrainResult, parse_model_names
    from core.train.trainer import Trainer

_EXPORTS = {
    "BASELINE_SUFFIX": "config",
    "TrainConfig": "config",
    "TrainResult": "config",
    "parse_model_names": "config",
    "Trainer": "trainer",
}
__all__ = ["BASELINE_SUFFIX", "TrainConfig", "TrainResult", "Trainer", "parse_model_names"]


def __getattr__(name: str) -> Any:
    # Imported on first use (PEP 562): the dashboard's job list reads ``core.train.runs`` on
    # every page, and the trainer pulls in the whole evaluation stack (2-3 s at start-up).
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"core.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'core.train' has no attribute {name!r}")
