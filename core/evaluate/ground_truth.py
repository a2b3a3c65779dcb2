"""Explanations checked against ground truth: what the dataset records about each row.

A manifest may record, per row, the state of each modality (``<modality>_state``:
``clean``, ``corrupted`` or ``missing``) and which kind of information the row carries
(``information``: ``redundant``, ``unique-<modality>`` or ``synergy``) and the class each
modality shows on its own (``<modality>_label``, which differs from the row's label when a
modality misleads); the demo does. These rates say how often exact modality Shapley values (from each row's coalition
values, see :mod:`core.evaluate.interactions`) agree with that record.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.evaluate.interactions import harsanyi_dividends
from core.evaluate.results import GroundTruthRates, SampleResult
from core.explain.modality_shapley import shapley_from_values

BAD_STATES = ("corrupted", "missing")
UNIQUE = "unique-"
SHOWN_LABEL = "{modality}_label"


def corrupted_modality_credit(samples: Sequence[SampleResult], modalities: Sequence[str]) -> GroundTruthRates | None:
    """How often modality Shapley gives a corrupted or missing modality less credit than a clean
    one, how often it credits the informative modality most, how often it credits the modality
    showing the label over one showing another class, and how often synergy rows are explained
    by an interaction; ``None`` when the rows record no state and no information."""
    rows = [s for s in samples if s.coalitions is not None]
    recorded = any(f"{m}_state" in s.extras or "information" in s.extras for s in rows for m in modalities)
    if not rows or not recorded:
        return None
    values = np.array([s.coalitions for s in rows], dtype=float)
    phi, _ = shapley_from_values(values)
    wins = {state: 0 for state in BAD_STATES}
    counts = {state: 0 for state in BAD_STATES}
    informative_wins = informative_pairs = 0
    conflict_wins = conflict_pairs = 0
    for row, sample in enumerate(rows):
        # A missing modality is not a player: its credit is 0 (it is absent from every coalition).
        credit = {m: float(phi[row, j]) for j, m in enumerate(modalities)}
        states = {m: sample.extras.get(f"{m}_state", "") for m in modalities}
        clean = [m for m, state in states.items() if state == "clean"]
        for bad, state in states.items():
            if state in BAD_STATES:
                counts[state] += len(clean)
                wins[state] += sum(credit[bad] < credit[good] for good in clean)
        information = sample.extras.get("information", "")
        informative = information.removeprefix(UNIQUE) if information.startswith(UNIQUE) else None
        if informative in credit:
            others = [m for m in modalities if m != informative and m in sample.present]
            informative_pairs += len(others)
            informative_wins += sum(credit[informative] > credit[m] for m in others)
        honest, misleading = _shown_labels(sample, modalities)
        conflict_pairs += len(honest) * len(misleading)
        conflict_wins += sum(credit[h] > credit[m] for h in honest for m in misleading)
    synergy = np.array([s.extras.get("information") == "synergy" for s in rows])
    largest = np.abs(harsanyi_dividends(values))[:, 1:].argmax(axis=1) + 1  # coalition of the largest term
    interaction = np.array([bin(c).count("1") >= 2 for c in largest])
    total = sum(counts.values())
    return GroundTruthRates(
        credit_rate=_rate(sum(wins.values()), total),
        comparisons=total,
        by_state={s: {"rate": _rate(wins[s], counts[s]), "comparisons": counts[s]} for s in BAD_STATES},
        informative_rate=_rate(informative_wins, informative_pairs),
        informative_comparisons=informative_pairs,
        conflict_rate=_rate(conflict_wins, conflict_pairs),
        conflict_comparisons=conflict_pairs,
        synergy_interaction_rate=float(interaction[synergy].mean()) if synergy.any() else None,
        synergy_rows=int(synergy.sum()),
        other_interaction_rate=float(interaction[~synergy].mean()) if (~synergy).any() else None,
    )


def _shown_labels(sample: SampleResult, modalities: Sequence[str]) -> tuple[list[str], list[str]]:
    """The present modalities whose recorded ``<modality>_label`` is the row's label, and those
    whose is another class; both empty unless the row records a disagreement."""
    shown = {m: sample.extras.get(SHOWN_LABEL.format(modality=m), "") for m in modalities if m in sample.present}
    shown = {m: label for m, label in shown.items() if label}
    if len(set(shown.values())) < 2:
        return [], []
    honest = [m for m, label in shown.items() if label == sample.label]
    return honest, [m for m, label in shown.items() if label != sample.label]


def _rate(wins: int, total: int) -> float | None:
    return wins / total if total else None
