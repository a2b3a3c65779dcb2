"""Cost against accuracy: one point per checkpoint, the Pareto front on each cost axis, and the
links from compressed checkpoints to their parents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from core.evaluate.results import CheckpointEvaluation, Interval
from core.serialization import JsonMixin

COST_AXES = {
    "latency_ms": "Latency, batch 1 (ms)",
    "disk_mb": "Size on disk (MB)",
    "memory_mb": "Parameter memory (MB)",
}
"""The cost axes a checkpoint is placed on (lower is better), and their titles."""


@dataclass
class TradeoffPoint(JsonMixin):
    """One checkpoint's place in the cost/accuracy plane.

    Attributes:
        value: the metric with its bootstrap interval.
        costs: :data:`COST_AXES` name -> value (``None`` where not measured).
        on_front: axis -> whether no other checkpoint is at least as cheap and at least as
            good on that axis, and strictly better in one of the two (the Pareto front).
        parent: the name of the checkpoint it was compressed from, when that checkpoint is among
            the results (``parent_outside`` holds the parent's name otherwise); ``compression``
            the method.
    """

    name: str
    value: Interval
    costs: dict[str, float | None]
    on_front: dict[str, bool] = field(default_factory=dict)
    compression: str | None = None
    parent: str | None = None
    parent_outside: str | None = None


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which ``(cost, value)`` points are not dominated (lower cost and higher value are better).

    >>> pareto_front([(1.0, 0.9), (2.0, 0.95), (3.0, 0.9)])
    [True, True, False]
    """
    return [
        not any(
            c2 <= c1 and v2 >= v1 and (c2 < c1 or v2 > v1) for j, (c2, v2) in enumerate(points) if j != i
        )
        for i, (c1, v1) in enumerate(points)
    ]


def tradeoff_points(results: Sequence[CheckpointEvaluation], metric: str = "accuracy") -> list[TradeoffPoint]:
    """A :class:`TradeoffPoint` per result that has the metric and a measured cost."""
    by_sha = {r.sha256: r.name for r in results}
    points = []
    for r in results:
        value = r.metrics.values.get(metric)
        if value is None or r.cost is None:
            continue
        interval = r.intervals.get(metric) or Interval(value, None, None)
        c = r.cost
        points.append(
            TradeoffPoint(
                name=r.name,
                value=Interval(value, interval.low, interval.high),
                costs={
                    "latency_ms": c.latency_ms_end_to_end,
                    "disk_mb": c.disk_bytes / 1e6 if c.disk_bytes is not None else None,
                    "memory_mb": c.parameter_bytes / 1e6 if c.parameter_bytes is not None else None,
                },
                compression=r.compression,
                parent=by_sha.get(r.parent_sha256 or ""),
                parent_outside=r.parent if r.parent_sha256 and r.parent_sha256 not in by_sha else None,
            )
        )
    for axis in COST_AXES:
        measured = [p for p in points if p.costs[axis] is not None]
        for point, front in zip(measured, pareto_front([(p.costs[axis], p.value.point) for p in measured]), strict=True):
            point.on_front[axis] = front
    return points
