"""One checkpoint's analysis on a split: slices, worst slices, modality usage, EMAP, ground truth.

Computed from the per-row results of :func:`core.evaluate.run.evaluate_checkpoint` (which
adds each row's coalition values and EMAP prediction), so it is also recomputed cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.evaluate.ground_truth import corrupted_modality_credit
from core.evaluate.interactions import emap_summary, modality_usage
from core.evaluate.results import Analysis, EvaluationOptions, SampleResult
from core.evaluate.slices import slice_columns, slice_metrics, worst_slices


def analyse(
    samples: Sequence[SampleResult],
    modalities: Sequence[str],
    classes: Sequence[str],
    options: EvaluationOptions,
    primary: bool = True,
) -> Analysis:
    """Every analysis of one checkpoint's scored rows. The ground-truth checks run for the
    ``primary`` task only: a manifest's ``information`` and ``<modality>_label`` columns
    describe its main target, not a second one (the demo's pitch comes from the audio alone)."""
    slices = slice_metrics(samples, classes, options)
    columns = {name: np.array(values) for name, values in slice_columns(samples, options.slice_columns).items()}
    usage_by_slice = {
        s.label: modality_usage([samples[i] for i in np.flatnonzero(columns[s.column] == s.value)], modalities)
        for s in slices
    }
    return Analysis(
        slices=slices,
        worst_slices=worst_slices(samples, options),
        usage=modality_usage(samples, modalities),
        usage_by_slice=usage_by_slice,
        emap=emap_summary(samples, options.emap_reference),
        ground_truth=corrupted_modality_credit(samples, modalities) if primary else None,
    )
