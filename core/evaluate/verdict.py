"""The verdict: strategies ranked, the significant differences, and why the winner wins.

Sentences are filled-in templates over the numbers of the evaluation (no language model):
the ranking and which differences survive a Holm correction of the pairwise McNemar
tests; the slices where the winner gains most over another strategy (paired McNemar on
the slice's rows); how much of each strategy's accuracy comes from cross-modal
interactions (EMAP); where the winner fails; whether its explanations agree with the
dataset's ground truth; and what fusion adds over the best single modality.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from core.evaluate.bootstrap import holm
from core.evaluate.results import CheckpointEvaluation, Interval, PairedTest, RankedCheckpoint, Verdict
from core.evaluate.slices import slice_columns

MAX_GAIN_SENTENCES = 2


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _points(value: float) -> str:
    return f"{100 * value:.0f} point{'s' if round(100 * value) != 1 else ''}"


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def headline_metric(result: CheckpointEvaluation) -> tuple[str, str]:
    """``(metric key, words)`` a verdict ranks by: accuracy, or micro F1 for a multi-label task."""
    return ("f1_micro", "micro F1") if result.task_kind == "multi" else ("accuracy", "accuracy")


def _score(result: CheckpointEvaluation) -> float:
    return result.metrics.values[headline_metric(result)[0]]


def _accuracy(result: CheckpointEvaluation) -> Interval:
    key = headline_metric(result)[0]
    return result.intervals.get(key) or Interval(result.metrics.values[key], None, None)


def _slice_gain(
    best: CheckpointEvaluation, other: CheckpointEvaluation, min_support: int
) -> tuple[str, float, float, float, int, float] | None:
    """The one-column slice where ``best`` gains most over ``other``, with a paired McNemar test:
    ``(slice, best accuracy, other accuracy, gain, rows, exact p)``. A slice holding exactly the
    same rows as another (``text_state = routing`` and ``information = synergy`` in the demo) is
    named with it."""
    theirs = {s.id: s.correct for s in other.samples}
    shared = [s for s in best.samples if s.id in theirs]
    if not shared:
        return None
    found = None
    rows_of: dict[str, tuple[int, ...]] = {}
    for column, values in slice_columns(shared).items():
        array = np.array(values)
        for value in sorted(set(values)):
            rows = np.flatnonzero(array == value)
            if len(rows) < min_support:
                continue
            label = f"{column} = {value}"
            rows_of[label] = tuple(rows)
            mine = np.array([shared[i].correct for i in rows])
            other_correct = np.array([theirs[shared[i].id] for i in rows])
            gain = float(mine.mean() - other_correct.mean())
            if found is None or gain > found[3]:
                only_mine, only_theirs = int((mine & ~other_correct).sum()), int((~mine & other_correct).sum())
                p = stats.binomtest(only_mine, only_mine + only_theirs, 0.5).pvalue if only_mine + only_theirs else 1.0
                found = (label, float(mine.mean()), float(other_correct.mean()), gain, len(rows), float(p))
    if found is None:
        return None
    same = [label for label, rows in rows_of.items() if label != found[0] and rows == rows_of[found[0]]]
    if same:
        found = (f"{found[0]} (the same rows as {_names(same)})", *found[1:])
    return found


def verdict(results: Sequence[CheckpointEvaluation], pairwise: Sequence[PairedTest], alpha: float = 0.05) -> Verdict:
    """Rank ``results`` by accuracy and say, in a few sentences, where the winner gains and why."""
    ranked = sorted(results, key=lambda r: -_score(r))
    shares = {r.name: r.analysis.emap.interaction_share if r.analysis and r.analysis.emap else None for r in results}
    ranking = [RankedCheckpoint(r.name, r.kind, _accuracy(r), shares[r.name]) for r in ranked]
    adjusted = holm([t.mcnemar_exact_p for t in pairwise])
    significant = []
    for test, p in zip(pairwise, adjusted, strict=True):
        if p < alpha and test.accuracy_a != test.accuracy_b:
            better, worse = (test.a, test.b) if test.accuracy_a > test.accuracy_b else (test.b, test.a)
            significant.append((better, worse, abs(test.accuracy_a - test.accuracy_b), float(p)))
    sentences = _ranking_sentences(ranked, significant)
    best = ranked[0]
    fusions = [r for r in ranked[1:] if r.kind != "unimodal"]
    min_support = best.options.min_support
    gains = [(other, _slice_gain(best, other, min_support)) for other in fusions]
    gains = sorted([(o, g) for o, g in gains if g is not None and g[3] > 0 and g[5] < alpha], key=lambda x: -x[1][3])
    for other, (label, mine, theirs, gain, n, p) in gains[:MAX_GAIN_SENTENCES]:
        sentences.append(
            f"{best.name} beats {other.name} by {_points(gain)} on the {n} rows where {label} "
            f"({_pct(mine)} vs {_pct(theirs)}, {_p(p)})."
        )
    sentences += _interaction_sentences(best, ranked, shares)
    sentences += _failure_sentences(best)
    unimodal = [r for r in ranked if r.kind == "unimodal"]
    if unimodal and best.kind != "unimodal":
        alone = unimodal[0]
        lift = _score(best) - _score(alone)
        sentences.append(f"The best single modality, {alone.name}, reaches {_pct(_score(alone))}: fusion adds {_points(lift)}.")
    return Verdict(ranking=ranking, significant=significant, sentences=sentences)


def _ranking_sentences(ranked: Sequence[CheckpointEvaluation], significant: list) -> list[str]:
    best = ranked[0]
    acc = _accuracy(best)
    interval = f"; 95% CI {_pct(acc.low)} to {_pct(acc.high)}" if acc.low is not None else ""
    words = headline_metric(best)[1]
    out = [f"{best.name} ranks first of {len(ranked)} checkpoints by {words} ({_pct(acc.point)}{interval})."]
    if len(ranked) < 2:
        return out
    beaten = [worse for better, worse, _, _ in significant if better == best.name]
    close = [r.name for r in ranked[1:] if r.name not in beaten]
    if beaten and close:
        out.append(
            f"It is significantly better than {_names(beaten)} (McNemar, Holm-corrected p < 0.05); "
            f"its lead over {_names(close)} is not significant."
        )
    elif beaten:
        out.append("It is significantly better than every other checkpoint (McNemar, Holm-corrected p < 0.05).")
    else:
        out.append("None of its leads is significant after a Holm correction of the paired McNemar tests.")
    return out


def _interaction_sentences(
    best: CheckpointEvaluation, ranked: Sequence[CheckpointEvaluation], shares: dict[str, float | None]
) -> list[str]:
    fusion_shares = {r.name: shares[r.name] for r in ranked if r.kind != "unimodal" and shares[r.name] is not None}
    if best.name not in fusion_shares:
        return []
    lowest = min(fusion_shares, key=lambda name: fusion_shares[name])
    mine = _pct(max(0.0, fusion_shares[best.name]))
    if lowest == best.name:
        return [f"{mine} of {best.name}'s accuracy comes from cross-modal interactions (EMAP)."]
    return [
        f"{mine} of {best.name}'s accuracy comes from cross-modal interactions (EMAP), "
        f"{_pct(max(0.0, fusion_shares[lowest]))} of {lowest}'s."
    ]


def _failure_sentences(best: CheckpointEvaluation) -> list[str]:
    analysis = best.analysis
    out = []
    if analysis and analysis.worst_slices:
        worst = analysis.worst_slices[0]
        out.append(
            f"{best.name} fails most on {worst.label}: {_pct(worst.accuracy)} against {_pct(worst.rest_accuracy)} "
            f"on the other rows ({worst.support} rows, Holm p = {worst.q_value:.3g})."
        )
    truth = analysis.ground_truth if analysis else None
    if truth and truth.credit_rate is not None:
        out.append(
            f"Its modality Shapley values give a clean modality more credit than a corrupted or missing one "
            f"in {_pct(truth.credit_rate)} of {truth.comparisons} comparisons."
        )
    if truth and truth.conflict_rate is not None:
        out.append(
            f"Where the modalities show different classes, it credits the one showing the label over the "
            f"misleading one in {_pct(truth.conflict_rate)} of {truth.conflict_comparisons} comparisons."
        )
    if truth and truth.synergy_interaction_rate is not None and truth.other_interaction_rate is not None:
        out.append(
            f"On synergy rows its largest Harsanyi dividend is a cross-modal interaction in "
            f"{_pct(truth.synergy_interaction_rate)} of {truth.synergy_rows} rows ({_pct(truth.other_interaction_rate)} elsewhere)."
        )
    return out
