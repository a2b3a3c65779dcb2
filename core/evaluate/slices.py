"""Slices: metrics for every value of every metadata column, and the slices where a model fails.

A slice is the rows sharing a value of one column (numeric columns are binned into
quartiles), of the modality-presence pattern (column ``modalities``), or of two columns at
once. :func:`slice_metrics` gives each slice's accuracy, macro F1 and ROC AUC with
bootstrap intervals; :func:`worst_slices` tests every slice with at least ``min_support``
rows against the rest (Fisher's exact test on correct/wrong), corrects for testing them
all (Holm: the chance that any reported slice is noise stays below ``alpha``), and keeps
the significantly worse ones, largest gap first (a two-column refinement right after its
one-column parent). A
two-column slice is only kept when it is clearly worse than each of its one-column
parents, so a failing slice is not repeated under every column that happens to split it.
Everything is computed from the per-row results of an evaluation: no model is run.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy import stats

from core.evaluate.bootstrap import bootstrap_intervals, holm
from core.evaluate.metrics import compute_metrics
from core.evaluate.results import EvaluationOptions, Interval, SampleResult, SliceFinding, SliceMetrics

PRESENCE = "modalities"
"""The pseudo-column holding each row's modality-presence pattern (``audio+image``)."""

MAX_CATEGORIES = 24
"""A non-numeric column with more distinct values than this (names, ids) is not sliced."""

QUANTILE_BINS = 4
EMPTY = "(empty)"


def slice_columns(samples: Sequence[SampleResult], wanted: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Column -> each row's slice value, for the columns worth slicing by.

    Numeric columns with more than :data:`MAX_CATEGORIES` values are binned into quartile
    ranges; id-like columns (a different whole number on every row) and other
    high-cardinality ones are left out. ``wanted`` restricts (and orders) the columns.
    """
    names = list(dict.fromkeys(k for s in samples for k in s.extras))
    if wanted is not None:
        names = [n for n in wanted if n in names or n == PRESENCE]
    columns: dict[str, list[str]] = {}
    if wanted is None or PRESENCE in wanted:
        columns[PRESENCE] = ["+".join(s.present) for s in samples]
    for name in names:
        if name == PRESENCE:
            continue
        values = [s.extras.get(name, "") or EMPTY for s in samples]
        binned = _binned(values)
        if binned is not None:
            columns[name] = binned
        elif 1 < len(set(values)) <= MAX_CATEGORIES:
            columns[name] = values
    return columns


def _binned(values: list[str]) -> list[str] | None:
    """Quartile ranges of a numeric column with many values, ``None`` for other columns."""
    numbers = np.array([_number(v) for v in values], dtype=float)
    known = numbers[np.isfinite(numbers)]
    given = [v for v in values if v != EMPTY]
    if len(known) < len(given) or len(set(given)) <= MAX_CATEGORIES or len(known) < 2 * QUANTILE_BINS:
        return None
    if len(set(given)) == len(given) and np.all(known == np.round(known)):  # an id or row number
        return None
    edges = np.unique(np.quantile(known, np.linspace(0, 1, QUANTILE_BINS + 1)))
    labels = [f"{edges[i]:.4g} to {edges[i + 1]:.4g}" for i in range(len(edges) - 1)]
    index = np.clip(np.searchsorted(edges, numbers, side="right") - 1, 0, len(labels) - 1)
    return [labels[i] if np.isfinite(n) else EMPTY for i, n in zip(index, numbers, strict=True)]


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")


def _arrays(samples: Sequence[SampleResult], classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[s.label] for s in samples], dtype=int)
    proba = np.array([s.probabilities for s in samples], dtype=float)
    correct = np.array([s.correct for s in samples], dtype=bool)
    return y, proba.reshape(len(samples), len(classes)), correct


def slice_metrics(
    samples: Sequence[SampleResult], classes: Sequence[str], options: EvaluationOptions
) -> list[SliceMetrics]:
    """Metrics with bootstrap intervals for every value of every sliced column (largest slices first)."""
    y, proba, correct = _arrays(samples, classes)
    overall = float(correct.mean()) if len(correct) else 0.0
    emap = np.array([s.emap_prediction == s.label if s.emap_prediction is not None else np.nan for s in samples])
    out = []
    for column, values in slice_columns(samples, options.slice_columns).items():
        array = np.array(values)
        for value in sorted(set(values), key=lambda v: (-int((array == v).sum()), v)):
            rows = np.flatnonzero(array == value)
            metrics = compute_metrics(y[rows], proba[rows], classes, ece_bins=options.ece_bins, top_k=())
            intervals = bootstrap_intervals(
                y[rows], proba[rows], metrics, resamples=options.bootstrap, seed=options.seed, ece_bins=options.ece_bins
            )

            def interval(name: str, metrics=metrics, intervals=intervals) -> Interval:
                return intervals.get(name) or Interval(metrics.values.get(name), None, None)

            emap_rows = emap[rows][np.isfinite(emap[rows])]
            out.append(
                SliceMetrics(
                    column=column,
                    value=value,
                    support=len(rows),
                    accuracy=interval("accuracy"),
                    f1_macro=interval("f1_macro"),
                    roc_auc_macro=interval("roc_auc_macro"),
                    gap=float(correct[rows].mean() - overall),
                    emap_accuracy=float(emap_rows.mean()) if len(emap_rows) else None,
                )
            )
    return out


def _candidates(columns: dict[str, list[str]], min_support: int) -> list[tuple[dict[str, str], np.ndarray]]:
    """Every one- and two-column slice with at least ``min_support`` rows, as (conditions, row mask)."""
    masks = {
        (column, value): np.array(values) == value
        for column, values in columns.items()
        for value in set(values)
    }
    singles = [({c: v}, m) for (c, v), m in masks.items() if m.sum() >= min_support]
    pairs = []
    for (c1, v1), (c2, v2) in itertools.combinations(sorted(masks), 2):
        if c1 == c2:
            continue
        mask = masks[(c1, v1)] & masks[(c2, v2)]
        if mask.sum() >= min_support and not (mask == masks[(c1, v1)]).all() and not (mask == masks[(c2, v2)]).all():
            pairs.append(({c1: v1, c2: v2}, mask))
    return singles + pairs


def worst_slices(
    samples: Sequence[SampleResult], options: EvaluationOptions, limit: int = 10
) -> list[SliceFinding]:
    """The slices significantly less accurate than the rest of the rows, largest gap first.

    Every slice with at least ``options.min_support`` rows (and at least that many outside
    it) is tested; Holm's correction over all of them holds the chance of reporting any
    slice of pure noise at ``options.alpha``.
    """
    if not samples:
        return []
    correct = np.array([s.correct for s in samples], dtype=bool)
    overall = float(correct.mean())
    tested = []
    for conditions, mask in _candidates(slice_columns(samples, options.slice_columns), options.min_support):
        inside, outside = correct[mask], correct[~mask]
        if len(outside) < options.min_support:
            continue
        table = [[int(inside.sum()), int((~inside).sum())], [int(outside.sum()), int((~outside).sum())]]
        p_value = float(stats.fisher_exact(table).pvalue)
        tested.append((conditions, mask, float(inside.mean()), float(outside.mean()), p_value))
    if not tested:
        return []
    q_values = holm([t[4] for t in tested])
    findings = [
        SliceFinding(conditions, int(mask.sum()), accuracy, rest, accuracy - overall, p, float(q))
        for (conditions, mask, accuracy, rest, p), q in zip(tested, q_values, strict=True)
        if q < options.alpha and accuracy < rest
    ]
    masks = {tuple(conditions.items()): mask for conditions, mask, *_ in tested}
    reported = {next(iter(f.conditions.items())) for f in findings if len(f.conditions) == 1}
    # A two-column slice inside a reported slice must also be worse than the rest of that parent;
    # these refinement tests are many too, so they get their own Holm correction.
    refinements = [
        (index, _refinement_p(correct, masks[tuple(f.conditions.items())], masks[(item,)]))
        for index, f in enumerate(findings)
        if len(f.conditions) == 2
        for item in f.conditions.items()
        if item in reported
    ]
    rejected = set()
    if refinements:
        q_refined = holm([p for _, p in refinements])
        rejected = {index for (index, _), q in zip(refinements, q_refined, strict=True) if q >= options.alpha}
    kept = [f for index, f in enumerate(findings) if index not in rejected]
    gaps = {next(iter(f.conditions.items())): f.gap for f in kept if len(f.conditions) == 1}

    def order(f: SliceFinding) -> tuple[float, int, float]:
        # A refinement is listed right after its (worst) reported parent; groups by the parent's gap.
        parents = [gaps[item] for item in f.conditions.items() if item in gaps] if len(f.conditions) == 2 else []
        return (min(parents), 1, f.gap) if parents else (f.gap, 0, f.q_value)

    kept.sort(key=order)
    return kept[:limit]


def _refinement_p(correct: np.ndarray, mask: np.ndarray, parent: np.ndarray) -> float:
    """One-sided Fisher p that the rows of ``mask`` are less accurate than the rest of ``parent``."""
    inside, rest = correct[mask], correct[parent & ~mask]
    if not len(rest):
        return 1.0
    table = [[int(inside.sum()), int((~inside).sum())], [int(rest.sum()), int((~rest).sum())]]
    return float(stats.fisher_exact(table, alternative="less").pvalue)


def slice_rows(samples: Sequence[SampleResult], conditions: dict[str, str]) -> list[int]:
    """Indices of the rows of ``samples`` in the slice given by ``{column: value}`` conditions."""
    columns = slice_columns(samples, list(conditions))
    keep = np.ones(len(samples), dtype=bool)
    for column, value in conditions.items():
        if column not in columns:
            return []
        keep &= np.array(columns[column]) == value
    return np.flatnonzero(keep).tolist()
