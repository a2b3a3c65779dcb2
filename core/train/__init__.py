"""Training: stage 1 trains the built-in encoders (the ``<modality>-only`` baselines), stage 2
trains every fusion strategy on the same frozen encoders.

================  =========================================================
module            what it holds
================  =========================================================
``config``        :class:`TrainConfig`, :class:`TrainResult`, model names
``trainer``       :class:`Trainer`: the two stages, checkpoints and their cards
``loop``          the epoch loop (AdamW, early stopping, DDP under torchrun)
``side_by_side``  independent trainings in one single-threaded process per core
``ahead``         stage 2's inputs, prepared while stage 1's last training runs
``resume``        per-epoch state on disk, so ``--resume`` continues a killed run
``events``        progress events as JSON lines (written by a run, read by the dashboard)
``runs``          background training runs: start, list, follow, cancel
================  =========================================================
"""

from typing import TYPE_CHECKING

from core.lazy import lazy_exports

if TYPE_CHECKING:
    from core.train.config import BASELINE_SUFFIX, TrainConfig, TrainResult, parse_model_names
    from core.train.trainer import Trainer

# The dashboard reads ``core.train.runs`` on every page; the trainer pulls in the whole
# evaluation stack, so it is imported when first used.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {"config": ["BASELINE_SUFFIX", "TrainConfig", "TrainResult", "parse_model_names"], "trainer": ["Trainer"]},
)
__all__ = ["BASELINE_SUFFIX", "TrainConfig", "TrainResult", "Trainer", "parse_model_names"]
