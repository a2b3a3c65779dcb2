"""Cost against accuracy: the Pareto front and the links from compressed checkpoints to parents."""

from types import SimpleNamespace

import plotly.graph_objects as go

from core.evaluate.results import Cost, Interval
from core.evaluate.tradeoffs import pareto_front, tradeoff_points
from core.figures.tradeoffs import cost_accuracy_figure


def _result(name, accuracy, latency, disk, memory, sha, parent_sha=None, parent=None, method=None):
    cost = Cost("cpu", 10, 5, 64, latency, 100.0, 0.1, 1000.0, None, "", disk_bytes=disk, parameter_bytes=memory)
    return SimpleNamespace(
        name=name, sha256=sha, metrics=SimpleNamespace(values={"accuracy": accuracy}),
        intervals={"accuracy": Interval(accuracy, accuracy - 0.02, min(1.0, accuracy + 0.02))}, cost=cost,
        compression=method, parent=parent, parent_sha256=parent_sha,
    )  # fmt: skip


RESULTS = [
    _result("early", 0.976, 8.0, 2_000_000, 2_000_000, "a"),
    _result("early-int8", 0.975, 9.0, 600_000, 700_000, "b", "a", "early", "int8"),
    _result("late", 0.80, 8.5, 1_900_000, 1_900_000, "c"),
    _result("gated-int8", 0.97, 7.0, 650_000, 750_000, "d", "z", "gated", "int8"),
]


def test_pareto_front_keeps_what_nothing_beats():
    assert pareto_front([(1.0, 0.9), (2.0, 0.95), (3.0, 0.9), (2.0, 0.95)]) == [True, True, False, True]
    assert pareto_front([(1.0, 0.5), (1.0, 0.6)]) == [False, True]
    assert pareto_front([]) == []


def test_points_are_placed_on_each_axis_with_their_front_and_parent():
    points = {p.name: p for p in tradeoff_points(RESULTS)}
    assert points["early-int8"].costs == {"latency_ms": 9.0, "disk_mb": 0.6, "memory_mb": 0.7}
    assert points["early-int8"].parent == "early" and points["early-int8"].parent_outside is None
    assert points["gated-int8"].parent is None and points["gated-int8"].parent_outside == "gated"
    # Latency: gated-int8 is fastest, early the most accurate; late is dominated everywhere.
    assert {n for n, p in points.items() if p.on_front["latency_ms"]} == {"gated-int8", "early"}
    assert {n for n, p in points.items() if p.on_front["disk_mb"]} == {"early-int8", "early"}
    assert not any(points["late"].on_front.values())


def test_the_figure_has_a_panel_per_axis_stars_on_the_front_and_parent_links():
    fig = cost_accuracy_figure(RESULTS)
    assert isinstance(fig, go.Figure)
    markers = [t for t in fig.data if t.mode == "markers"]
    assert len(markers) == 3 * len(RESULTS)
    stars = {(t.name, t.xaxis) for t in markers if t.marker.symbol == "star"}
    assert ("early", "x") in stars and ("late", "x") not in stars
    links = [t for t in fig.data if t.mode == "lines" and t.line.dash == "dot"]
    assert len(links) == 3  # early-int8 -> early on each panel; gated-int8's parent is not compared
    assert list(links[0].x) == [8.0, 9.0]
    fig.to_json()
