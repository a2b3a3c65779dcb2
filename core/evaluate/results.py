"""The result objects of an evaluation: plain dataclasses that round-trip through JSON.

They hold no tensors: :mod:`core.figures.evaluation` draws them, :mod:`core.report` writes
them into one HTML file, and the evaluation cache stores them as JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from core.serialization import JsonMixin
from core.settings import LOCAL_USER

EVALUATION_VERSION = 5
"""Part of every evaluation-cache key: bump when a computation here changes."""


@dataclass(frozen=True)
class EvaluationOptions(JsonMixin):
    """What an evaluation computes; part of the evaluation-cache key.

    Attributes:
        bootstrap: resamples for confidence intervals (0 disables them).
        seed: seeds bootstrap, corruptions and permutations.
        robustness: compute the missing-modality table, corruption sweeps and reliance.
        reliance_repeats: permutations per modality.
        ece_bins: equal-width confidence bins of ECE and the reliability diagram.
        top_k: k values of top-k accuracy (only those below the number of classes are reported).
        corruptions: names of the :data:`CORRUPTIONS` to sweep.
        sweep_rows: at most this many rows are scored under each corruption (a seeded subsample,
            the same for every checkpoint of a split; 0: every row). A sweep re-encodes each
            corrupted input at five severities, the dominant cost of a large evaluation; the
            sample's accuracy has a standard error of at most 1.6 points at 1,000 rows.
        cost: measure latency, throughput and peak memory.
        large_batch: batch size of the throughput and peak-memory measurements.
        analysis: slices, worst slices, EMAP, modality usage and ground-truth checks.
        slice_columns: metadata columns to slice by (``None``: every usable one).
        min_support: fewest rows a slice needs to be reported or tested.
        alpha: false-discovery rate of the worst-slice search and level of significance.
        emap_rows: at most this many rows get an EMAP projection (a seeded subsample).
        emap_reference: reference rows the EMAP expectations average over.
    """

    bootstrap: int = 1000
    seed: int = 0
    robustness: bool = True
    reliance_repeats: int = 5
    ece_bins: int = 15
    top_k: tuple[int, ...] = (2, 3)
    corruptions: tuple[str, ...] = ("image_noise", "image_occlusion", "audio_noise", "text_dropout")
    sweep_rows: int = 1000
    cost: bool = True
    large_batch: int = 64
    analysis: bool = True
    slice_columns: tuple[str, ...] | None = None
    min_support: int = 20
    alpha: float = 0.05
    emap_rows: int = 2000
    emap_reference: int = 128

    def key(self) -> str:
        """Hash of the options and :data:`EVALUATION_VERSION`."""
        text = json.dumps({"version": EVALUATION_VERSION, **self.to_json()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Metrics(JsonMixin):
    """Scalar metrics of one set of predictions.

    Attributes:
        n: rows scored.
        values: ``accuracy``, ``balanced_accuracy``, ``precision_macro``, ``recall_macro``,
            ``f1_macro``, ``precision_weighted``, ``recall_weighted``, ``f1_weighted``,
            ``log_loss``, ``top_<k>_accuracy``, ``roc_auc`` (binary: of the second class;
            multiclass: = ``roc_auc_macro``), ``roc_auc_macro``, ``roc_auc_micro``,
            ``average_precision_macro``, ``average_precision_micro``, ``brier``, ``ece``.
            ``None`` where undefined (see ``undefined``).
        roc_auc_per_class, average_precision_per_class: one-vs-rest, ``None`` for a class
            absent from the split.
        undefined: metric name -> why it is ``None``.
        notes: human remarks (absent classes, single-class split).
    """

    n: int
    values: dict[str, float | None]
    roc_auc_per_class: dict[str, float | None]
    average_precision_per_class: dict[str, float | None]
    undefined: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Interval(JsonMixin):
    """Point estimate and percentile bootstrap 95% interval (``None`` when undefined)."""

    point: float | None
    low: float | None
    high: float | None


@dataclass
class Curve(JsonMixin):
    """One ROC (x = FPR, y = TPR) or PR (x = recall, y = precision) curve and its area."""

    x: list[float]
    y: list[float]
    area: float | None


@dataclass
class ReliabilityBins(JsonMixin):
    """Equal-width confidence bins: mean confidence and accuracy (``None`` in empty bins)."""

    lower: list[float]
    upper: list[float]
    count: list[int]
    confidence: list[float | None]
    accuracy: list[float | None]


@dataclass
class Curves(JsonMixin):
    """Curves as data. ``roc`` and ``pr`` are keyed by class name, ``"micro"`` and ``"macro"``;
    classes absent from the split have no curve. Confusion rows are true classes, columns
    predictions; ``confusion_normalized`` rows sum to 1 (``None`` for absent classes)."""

    roc: dict[str, Curve]
    pr: dict[str, Curve]
    reliability: ReliabilityBins
    confusion: list[list[int]]
    confusion_normalized: list[list[float | None]]


@dataclass
class SampleResult(JsonMixin):
    """One scored row: the dashboard lists misclassified and disputed samples from these.

    Attributes:
        coalitions: the true class's probability for every coalition of the checkpoint's
            modalities (index ``c`` holds modality ``i`` when bit ``i`` is set; row 0 none,
            the last all), from which modality Shapley values, interactions and Harsanyi
            dividends of this row follow. ``None`` without analysis.
        emap_prediction: the prediction of the checkpoint's best additive projection (EMAP),
            ``None`` for rows outside the EMAP subsample.
    """

    id: str
    label: str
    prediction: str
    probabilities: list[float]
    correct: bool
    present: list[str]
    extras: dict[str, str]
    coalitions: list[float] | None = None
    emap_prediction: str | None = None


@dataclass
class SubsetResult(JsonMixin):
    """Metrics when only ``modalities`` are kept (the others marked absent)."""

    modalities: list[str]
    values: dict[str, float | None]


@dataclass
class CorruptionSweep(JsonMixin):
    """Metric-vs-severity of one corruption; index 0 is the clean input.

    Attributes:
        name, modality, description: e.g. ``image_noise``, ``image``, ``Gaussian noise``.
        parameter: what ``levels`` measure, e.g. ``noise std (fraction of range)``.
        levels: the parameter at each severity (``None`` = clean).
        level_labels: short tick labels.
        values: per severity, :data:`SWEEP_METRICS` (no ranking metrics: a sweep holds many
            points and these are what the curves show).
        n_corrupted: scored rows that have the modality (the others are unaffected).
        n_scored: rows the sweep is scored on: every row of the split, or a seeded sample of
            :attr:`EvaluationOptions.sweep_rows` of them.
        n_rows: rows of the split.
    """

    name: str
    modality: str
    description: str
    parameter: str
    levels: list[float | None]
    level_labels: list[str]
    values: list[dict[str, float | None]]
    n_corrupted: int
    n_scored: int = 0
    n_rows: int = 0

    @property
    def sampled(self) -> bool:
        return 0 < self.n_scored < self.n_rows


@dataclass
class RelianceScore(JsonMixin):
    """Accuracy drop when one modality's embeddings and presence are shuffled across rows."""

    modality: str
    mean_drop: float
    std_drop: float
    drops: list[float]


@dataclass
class Cost(JsonMixin):
    """Size and speed on ``device``.

    Latencies are medians over single-sample calls; throughputs are samples per second
    at ``large_batch``. ``end_to_end`` starts from decoded samples (preprocessing +
    encoders + fusion + head); ``fusion`` starts from embeddings. ``peak_memory_mb`` is
    measured during the end-to-end large-batch pass; ``peak_memory_method`` says how.
    ``disk_bytes`` is the size of the weights file; ``parameter_bytes`` what the model's
    weights and buffers take in memory at their precision (int8 weights at one byte each).
    """

    device: str
    parameters: int
    fusion_parameters: int
    large_batch: int
    latency_ms_end_to_end: float
    throughput_end_to_end: float
    latency_ms_fusion: float
    throughput_fusion: float
    peak_memory_mb: float | None
    peak_memory_method: str
    disk_bytes: int | None = None
    parameter_bytes: int | None = None


@dataclass
class SliceMetrics(JsonMixin):
    """Metrics of the rows sharing a value of a column (a metadata column, ``modalities`` for the
    presence pattern, or two columns joined by `` & ``).

    Attributes:
        gap: accuracy minus the checkpoint's overall accuracy.
        emap_accuracy: accuracy of the EMAP projection on the slice's rows in the EMAP
            subsample (``None`` without).
    """

    column: str
    value: str
    support: int
    accuracy: Interval
    f1_macro: Interval
    roc_auc_macro: Interval
    gap: float
    emap_accuracy: float | None = None

    @property
    def label(self) -> str:
        return f"{self.column} = {self.value}"


@dataclass
class SliceFinding(JsonMixin):
    """A slice where the checkpoint is significantly worse than on the other rows.

    ``p_value`` is Fisher's exact test of correct/wrong inside vs outside the slice;
    ``q_value`` its Holm-adjusted value over every slice tested.
    """

    conditions: dict[str, str]
    support: int
    accuracy: float
    rest_accuracy: float
    gap: float
    p_value: float
    q_value: float

    @property
    def label(self) -> str:
        return " & ".join(f"{column} = {value}" for column, value in self.conditions.items())


@dataclass
class ModalityUsage(JsonMixin):
    """How a checkpoint uses its modalities over some rows: exact modality Shapley values of the
    true class's probability (mean and mean absolute) and mean absolute pairwise Shapley
    interaction indices (keys ``"audio×image"``)."""

    rows: int
    mean_shapley: dict[str, float]
    mean_abs_shapley: dict[str, float]
    mean_abs_interaction: dict[str, float]


@dataclass
class Emap(JsonMixin):
    """EMAP (Hessel and Lee, 2020): the model against its best additive projection.

    ``interaction_share`` = (accuracy - emap_accuracy) / accuracy: the part of the model's
    accuracy owed to cross-modal interactions (0 for a purely additive model).
    """

    rows: int
    reference_rows: int
    accuracy: float
    emap_accuracy: float
    gap: float
    interaction_share: float


@dataclass
class GroundTruthRates(JsonMixin):
    """Explanations checked against what the dataset records about each row.

    Attributes:
        credit_rate: share of (corrupted or missing modality, clean modality) pairs in which
            modality Shapley gives the clean one more credit; ``by_state`` splits it by state.
        informative_rate: on rows whose ``information`` is ``unique-<m>``, share of pairs in
            which the informative modality gets more credit than another present one.
        conflict_rate: on rows where the modalities show different classes (recorded as
            ``<modality>_label``), share of pairs in which the modality showing the row's label
            gets more credit than one showing another class.
        synergy_interaction_rate: on ``synergy`` rows, share whose largest Harsanyi dividend
            (in absolute value) is an interaction of two or more modalities;
            ``other_interaction_rate`` the same on every other row, for reference.
    """

    credit_rate: float | None
    comparisons: int
    by_state: dict[str, dict[str, float | None]]
    informative_rate: float | None = None
    informative_comparisons: int = 0
    conflict_rate: float | None = None
    conflict_comparisons: int = 0
    synergy_interaction_rate: float | None = None
    synergy_rows: int = 0
    other_interaction_rate: float | None = None


@dataclass
class Analysis(JsonMixin):
    """Why a checkpoint wins or fails: slices, the worst of them, modality usage, EMAP, ground truth."""

    slices: list[SliceMetrics]
    worst_slices: list[SliceFinding]
    usage: ModalityUsage
    usage_by_slice: dict[str, ModalityUsage]
    emap: Emap | None
    ground_truth: GroundTruthRates | None


@dataclass
class CheckpointEvaluation(JsonMixin):
    """Everything measured for one checkpoint on one dataset split, for one task.

    ``task`` and ``task_kind`` name the task scored (``classes`` are its classes or labels);
    a multi-label task has the metrics of :mod:`core.evaluate.multilabel` at ``thresholds``,
    no confusion matrix and no analysis. ``multi_task`` says whether the checkpoint predicts
    other tasks too. A compressed checkpoint has its ``compression`` method and its parent's
    weights hash (``parent_sha256``) and name.
    """

    name: str
    path: str
    sha256: str
    fusion: str
    kind: str
    modalities: list[str]
    classes: list[str]
    dataset: str
    dataset_fingerprint: str
    split: str
    n_rows: int
    n_excluded: int
    excluded_labels: dict[str, int]
    metrics: Metrics
    intervals: dict[str, Interval]
    curves: Curves
    samples: list[SampleResult]
    missing_modality: list[SubsetResult]
    corruptions: list[CorruptionSweep]
    reliance: list[RelianceScore]
    cost: Cost | None
    options: EvaluationOptions
    notes: list[str]
    seconds: float
    analysis: Analysis | None = None
    task: str = "label"
    task_kind: str = "single"
    thresholds: dict[str, float] = field(default_factory=dict)
    multi_task: bool = False
    started_by: str = LOCAL_USER
    """Who asked for this evaluation first (a signed-in e-mail, or ``local``); cached with it."""
    compression: str | None = None
    parent: str | None = None
    parent_sha256: str | None = None


@dataclass
class PairedTest(JsonMixin):
    """Paired comparison of checkpoints ``a`` and ``b`` on the rows both scored.

    ``only_a_correct`` and ``only_b_correct`` are McNemar's discordant counts; the exact
    p-value is a two-sided binomial test of them, the chi-squared one uses the continuity
    correction. ``difference`` is accuracy(a) - accuracy(b) with a paired bootstrap interval;
    ``bootstrap_p`` is the two-sided share of resamples on the other side of zero.
    """

    a: str
    b: str
    n: int
    accuracy_a: float
    accuracy_b: float
    difference: Interval
    both_correct: int
    only_a_correct: int
    only_b_correct: int
    both_wrong: int
    mcnemar_exact_p: float
    mcnemar_chi2: float | None
    mcnemar_chi2_p: float
    bootstrap_p: float | None


@dataclass
class RankedCheckpoint(JsonMixin):
    """One line of the verdict's ranking."""

    name: str
    kind: str
    accuracy: Interval
    interaction_share: float | None


@dataclass
class Verdict(JsonMixin):
    """The strategies ranked, which differences are significant, and sentences saying where
    the winner gains and why (generated from the numbers by templates).

    ``significant`` lists ``(better, worse, accuracy difference, Holm-adjusted McNemar p)``
    for every pair whose difference survives the correction.
    """

    ranking: list[RankedCheckpoint]
    significant: list[tuple[str, str, float, float]]
    sentences: list[str]


@dataclass
class EvaluationReport(JsonMixin):
    """Several checkpoints evaluated on the same split, with pairwise tests and a verdict."""

    dataset: str
    dataset_fingerprint: str
    split: str
    created_at: str
    device: str
    versions: dict[str, str]
    checkpoints: list[CheckpointEvaluation]
    pairwise: list[PairedTest]
    seconds: float
    verdict: Verdict | None = None
    task: str = "label"
    task_kind: str = "single"

    def by_name(self, name: str) -> CheckpointEvaluation:
        for result in self.checkpoints:
            if result.name == name:
                return result
        raise KeyError(name)
