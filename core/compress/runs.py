"""Compressions in the background, beside training runs (:mod:`core.train.runs` starts, lists,
follows and cancels both): ``python -m core compress ... --events <run>/events.jsonl``."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from core.roots import checkpoint_folder, dataset_folder
from core.settings import Settings


@dataclass(frozen=True)
class CompressSpec:
    """What to compress: the arguments of ``python -m core compress``.

    Args:
        checkpoint: the parent checkpoint folder.
        method: ``int8``, ``fp16``, ``prune:<fraction>`` or ``distill``.
        out: the new checkpoint folder.
        data: the dataset to fine-tune on and score with (empty: the parent's).
        student_hidden, student_fusion, temperature, alpha: distillation's options.
        epochs: fine-tune epochs (``None``: the method's default).
        seed: seeds the fine-tune.
    """

    checkpoint: str
    method: str
    out: str
    data: str = ""
    student_hidden: int | None = None
    student_fusion: str | None = None
    temperature: float = 4.0
    alpha: float = 0.7
    epochs: int | None = None
    seed: int = 0
    kind: ClassVar[str] = "compress"

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> CompressSpec:
        return cls(**spec)

    def checked(self, config: Settings) -> CompressSpec:
        """This spec with its folders resolved, if they are inside the roots: the parent and the
        new checkpoint inside a checkpoint root, the dataset (when given) inside a data root.

        Raises:
            AccessError: with :data:`core.roots.NOT_OFFERED`.
        """
        return replace(
            self,
            checkpoint=str(checkpoint_folder(self.checkpoint, config)),
            out=str(checkpoint_folder(self.out, config)),
            data=str(dataset_folder(self.data, config)) if self.data else "",
        )

    @property
    def models(self) -> tuple[str, ...]:
        """The checkpoint the run writes (what a run's progress counts)."""
        return (Path(self.out).name,)

    def command(self, events: Path) -> list[str]:
        """The ``python -m core compress`` command line of this spec."""
        cmd = [
            sys.executable, "-m", "core", "compress",
            "--checkpoint", self.checkpoint,
            "--method", self.method,
            "--out", self.out,
            "--temperature", str(self.temperature),
            "--alpha", str(self.alpha),
            "--seed", str(self.seed),
            "--events", str(events),
            "--quiet",
        ]  # fmt: skip
        optional = {"--data": self.data, "--student-hidden": self.student_hidden, "--student-fusion": self.student_fusion,
                    "--epochs": self.epochs}  # fmt: skip
        for flag, value in optional.items():
            if value not in (None, ""):
                cmd += [flag, str(value)]
        return cmd
