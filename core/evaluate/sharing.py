"""Does sharing help or hurt? Each multi-task checkpoint against the same strategy trained on one task.

A single-task copy is named ``<fusion>.<task>`` (see :mod:`core.tasks`); on a
report of one task, every multi-task checkpoint with such a copy for that task forms a
pair, compared on the rows both scored (paired bootstrap interval of the difference,
McNemar's exact test).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.evaluate.bootstrap import paired_test
from core.evaluate.results import EvaluationReport, Interval
from core.serialization import JsonMixin
from core.tasks import SINGLE_TASK_SEPARATOR


@dataclass
class SharingComparison(JsonMixin):
    """One strategy on one task, trained with the other tasks (shared) and alone.

    ``difference`` is shared minus alone (positive: sharing helps), with its paired
    bootstrap interval; ``p`` McNemar's exact p-value.
    """

    strategy: str
    task: str
    shared: Interval
    alone: Interval
    difference: Interval
    p: float


def sharing_comparisons(report: EvaluationReport, resamples: int = 1000, seed: int = 0) -> list[SharingComparison]:
    """Every (multi-task checkpoint, its single-task copy for the report's task) pair in ``report``."""
    by_name = {r.name: r for r in report.checkpoints}
    out = []
    for name, result in by_name.items():
        alone = by_name.get(f"{name}{SINGLE_TASK_SEPARATOR}{report.task}")
        if alone is None or not result.multi_task:
            continue
        test = paired_test(result, alone, resamples=resamples, seed=seed)
        out.append(
            SharingComparison(
                strategy=name,
                task=report.task,
                shared=result.intervals.get("accuracy") or Interval(test.accuracy_a, None, None),
                alone=alone.intervals.get("accuracy") or Interval(test.accuracy_b, None, None),
                difference=test.difference,
                p=test.mcnemar_exact_p,
            )
        )
    return out
