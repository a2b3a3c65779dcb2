"""Evaluation and comparison of checkpoints: metrics, curves, calibration, robustness, cost.

Everything here returns plain dataclasses (:mod:`core.evaluate.results`) that round-trip
through JSON and hold no tensors; :mod:`core.figures.evaluation` draws them and
:mod:`core.report` writes them into one HTML file.

=====================  ==========================================================
module                 what it holds
=====================  ==========================================================
``results``            the result objects (options, metrics, curves, report...)
``metrics``            scalar metrics through scikit-learn; the metric keys
``curves``             ROC / PR curves, reliability bins, ECE, confusion matrices
``bootstrap``          bootstrap intervals and paired tests (McNemar, paired bootstrap)
``robustness``         missing modalities, corruption sweeps, modality reliance
``cost``               parameters, latency, throughput, peak memory
``run``                ``evaluate_checkpoint``, ``evaluate``, ``compare``
``cache``              ``evaluate_cached``: one JSON file per checkpoint, dataset, split, options
=====================  ==========================================================

Example
-------
>>> report = evaluate(["checkpoints/early", "checkpoints/late"], "demo_data")  # doctest: +SKIP
>>> report.checkpoints[0].metrics.values["accuracy"]  # doctest: +SKIP
0.93
"""

from typing import TYPE_CHECKING

from core.lazy import lazy_exports

if TYPE_CHECKING:
    from core.errors import EvaluationError
    from core.evaluate.bootstrap import bootstrap_intervals, paired_test
    from core.evaluate.cache import cached_evaluation_path, evaluate_cached, evaluation_cache_key
    from core.evaluate.curves import compute_curves, expected_calibration_error, reliability_bins
    from core.evaluate.metrics import (
        HEADLINE_METRICS,
        LOWER_IS_BETTER,
        SWEEP_METRICS,
        compute_metrics,
        headline_metrics,
        sweep_metrics,
    )
    from core.evaluate.results import (
        CheckpointEvaluation,
        CorruptionSweep,
        Cost,
        Curve,
        Curves,
        EvaluationOptions,
        EvaluationReport,
        Interval,
        Metrics,
        PairedTest,
        ReliabilityBins,
        RelianceScore,
        SampleResult,
        SubsetResult,
    )
    from core.evaluate.robustness import CORRUPTIONS, SplitInputs
    from core.evaluate.run import (
        compare,
        disagreements,
        evaluate,
        evaluate_checkpoint,
        incompatibility,
        library_versions,
    )

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "core.errors": ["EvaluationError"],
        "bootstrap": ["bootstrap_intervals", "paired_test"],
        "cache": ["cached_evaluation_path", "evaluate_cached", "evaluation_cache_key"],
        "curves": ["compute_curves", "expected_calibration_error", "reliability_bins"],
        "metrics": ["HEADLINE_METRICS", "LOWER_IS_BETTER", "SWEEP_METRICS", "compute_metrics", "headline_metrics", "sweep_metrics"],
        "results": ["CheckpointEvaluation", "CorruptionSweep", "Cost", "Curve", "Curves", "EvaluationOptions", "EvaluationReport", "Interval", "Metrics", "PairedTest", "ReliabilityBins", "RelianceScore", "SampleResult", "SubsetResult"],
        "robustness": ["CORRUPTIONS", "SplitInputs"],
        "run": ["compare", "disagreements", "evaluate", "evaluate_checkpoint", "incompatibility", "library_versions"],
    },
)
__all__ = [
    "CORRUPTIONS",
    "HEADLINE_METRICS",
    "LOWER_IS_BETTER",
    "SWEEP_METRICS",
    "CheckpointEvaluation",
    "Cost",
    "CorruptionSweep",
    "Curve",
    "Curves",
    "EvaluationError",
    "EvaluationOptions",
    "EvaluationReport",
    "Interval",
    "Metrics",
    "PairedTest",
    "RelianceScore",
    "ReliabilityBins",
    "SampleResult",
    "SplitInputs",
    "SubsetResult",
    "bootstrap_intervals",
    "cached_evaluation_path",
    "compare",
    "compute_curves",
    "compute_metrics",
    "disagreements",
    "evaluate",
    "evaluate_cached",
    "evaluate_checkpoint",
    "evaluation_cache_key",
    "expected_calibration_error",
    "headline_metrics",
    "incompatibility",
    "library_versions",
    "paired_test",
    "reliability_bins",
    "sweep_metrics",
]
