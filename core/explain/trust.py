"""Which attribution method to believe, per modality, for one checkpoint.

:func:`assess_methods` explains a seeded sample of a split's rows with every method and
measures, per method and modality:

- faithfulness: deletion and insertion AUC over that modality's segments alone (the
  others kept), against a random order (:func:`core.explain.quality.faithfulness`);
- the randomisation sanity checks (:mod:`core.explain.randomisation`): model-parameter
  cascade and shuffled-label retraining, on a few rows with every modality;
- stability (:mod:`core.explain.stability`): max-sensitivity under small input noise and,
  for sampling methods, the variation across seeds;
- the time per explanation.

Methods are ranked per modality by their mean rank over four criteria (deletion gain
over random, insertion gain over random, randomisation correlation, max-sensitivity);
a method that fails the model-randomisation check goes after every method that passes.
The deliberately broken control (:class:`~core.explain.input_only.InputOnlyExplainer`) is
assessed too, to show the checks catch it, and is never recommended. Results are cached
on disk under ``settings().cache_dir / "trust"``, keyed by checkpoint weights, dataset
content and options.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

from core.atomic import write_text_atomic
from core.checkpoints import LoadedCheckpoint
from core.data import Dataset, Record, load_sample
from core.device import describe_device
from core.embeddings import embed_records
from core.encoders.cache import EmbeddingCache
from core.errors import Cancelled, ExplanationError
from core.explain import RANKED_METHODS
from core.explain.base import Explainer
from core.explain.engine import CancelFlag, PerturbationEngine, is_cancelled
from core.explain.input_only import InputOnlyExplainer
from core.explain.params import ExplainParams
from core.explain.quality import faithfulness
from core.explain.randomisation import (
    attribution_function,
    cascading_randomisation,
    data_randomisation,
    shuffled_label_model,
)
from core.explain.registry import EXPLAINERS
from core.explain.result import Explanation
from core.explain.run import explained_modalities, run_explainer
from core.explain.stability import max_sensitivity, seed_variation
from core.serialization import JsonMixin, read_cached
from core.settings import settings

CONTROL = InputOnlyExplainer()
CRITERIA = ("deletion_gain", "insertion_gain", "randomisation", "max_sensitivity")
"""What the ranking averages: gains over a random order (higher is better), the mean rank
correlation of the two randomisation checks and max-sensitivity (lower is better)."""


@dataclass(frozen=True)
class AssessmentOptions:
    """How much work :func:`assess_methods` does.

    Attributes:
        split: the rows come from this split.
        samples: rows explained for faithfulness and time.
        sanity_samples: of those, rows with every modality used for the randomisation checks
            and stability (each costs a few explanations per method).
        methods: registered methods to assess.
        params: explanation settings (the dashboard's defaults: 300 LIME samples per modality,
            300 SHAP evaluations).
        max_encoder_steps: encoder groups of the randomisation cascade.
        n_perturb: noised copies per row for max-sensitivity.
        seeds: seeds compared for sampling methods.
        shuffled_label_epochs: epochs of the shuffled-label fusion head.
        control: also assess the deliberately broken method.
        seed: picks the rows, seeds the randomisations.
        task: the task whose output is explained (``None``: the model's primary task).
    """

    split: str = "test"
    samples: int = 24
    sanity_samples: int = 6
    methods: tuple[str, ...] = RANKED_METHODS
    params: ExplainParams = field(default_factory=lambda: ExplainParams(lime_samples=300, shap_evals=300))
    max_encoder_steps: int = 2
    n_perturb: int = 4
    seeds: int = 3
    shuffled_label_epochs: int = 30
    control: bool = True
    seed: int = 0
    task: str | None = None

    def to_dict(self) -> dict:
        return {**asdict(self), "methods": list(self.methods), "params": self.params.to_dict()}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ModalityAssessment(JsonMixin):
    """One method on one modality (means over the rows that have it; ``None``/NaN: not measured)."""

    rows: int = 0
    deletion_auc: float = float("nan")
    insertion_auc: float = float("nan")
    random_deletion_auc: float = float("nan")
    random_insertion_auc: float = float("nan")
    model_randomisation: float = float("nan")
    model_randomisation_passed: bool | None = None
    data_randomisation: float = float("nan")
    data_randomisation_passed: bool | None = None
    max_sensitivity: float = float("nan")
    seed_rank_correlation: float | None = None
    seed_sign_flips: float | None = None
    rank: int | None = None

    @property
    def deletion_gain(self) -> float:
        return self.random_deletion_auc - self.deletion_auc

    @property
    def insertion_gain(self) -> float:
        return self.insertion_auc - self.random_insertion_auc

    @property
    def randomisation(self) -> float:
        values = [v for v in (self.model_randomisation, self.data_randomisation) if np.isfinite(v)]
        return float(np.mean(values)) if values else float("nan")


@dataclass
class MethodAssessment(JsonMixin):
    method: str
    label: str
    control: bool = False
    seconds_per_explanation: float = float("nan")
    not_applicable: str | None = None
    modalities: dict[str, ModalityAssessment] = field(default_factory=dict)


@dataclass
class TrustReport(JsonMixin):
    """Per checkpoint: every method's scores per modality, the ranking and the recommendation.

    Attributes:
        ranking: per modality, methods best first (the control, when failing, last).
        recommendation: per modality, the best method that is not the control.
        rows, sanity_rows: record ids explained, and those the sanity checks used.
        shuffled_labels: how the shuffled-label model fitted (train accuracy, seconds), or why not.
    """

    checkpoint: str
    sha256: str
    dataset_fingerprint: str
    split: str
    rows: list[str]
    sanity_rows: list[str]
    options: dict
    methods: dict[str, MethodAssessment]
    ranking: dict[str, list[str]]
    recommendation: dict[str, str]
    shuffled_labels: dict
    device: str
    runtime_s: float


def trust_cache_path(sha256: str, dataset: Dataset, options: AssessmentOptions, cache_dir: Path | None = None) -> Path:
    """Where the assessment of the checkpoint with weights ``sha256`` on ``dataset`` is cached."""
    root = Path(cache_dir) if cache_dir is not None else settings().cache_dir / "trust"
    key = hashlib.sha256(f"{sha256}|{dataset.fingerprint}|{options.key()}".encode()).hexdigest()[:32]
    return root / f"{key}.json"


def _normalised(loaded: LoadedCheckpoint, options: AssessmentOptions | None) -> AssessmentOptions:
    """``options`` with the primary task named ``None``, so both spellings share one cache entry."""
    options = options or AssessmentOptions()
    return replace(options, task=None) if options.task == loaded.model.tasks[0].name else options


def cached_assessment(
    loaded: LoadedCheckpoint, dataset: Dataset, options: AssessmentOptions | None = None, cache_dir: Path | None = None
) -> TrustReport | None:
    """The cached assessment, or ``None`` (an unreadable cache file is removed)."""
    path = trust_cache_path(loaded.card.sha256, dataset, _normalised(loaded, options), cache_dir)
    return read_cached(TrustReport, path)


def _pick_rows(dataset: Dataset, loaded: LoadedCheckpoint, options: AssessmentOptions) -> tuple[list[Record], list[Record]]:
    """A seeded sample of the split's rows with any of the model's modalities, and the rows for
    the sanity checks: rows with every modality, those with at least four words first (a rank
    correlation over fewer tokens is mostly noise)."""
    model = loaded.model
    records = [r for r in dataset.split(options.split) if any(getattr(r, m) is not None for m in model.modalities)]
    if not records:
        raise ExplanationError(f"The split {options.split!r} has no rows with the checkpoint's modalities.")
    shuffled = [records[i] for i in np.random.default_rng(options.seed).permutation(len(records))]
    complete = [r for r in shuffled if all(getattr(r, m) is not None for m in model.modalities)]
    wordy = [r for r in complete if r.text is None or len(r.text.split()) >= 4]
    sanity = (wordy + [r for r in complete if r not in wordy])[: options.sanity_samples]
    return shuffled[: options.samples], sanity or shuffled[: options.sanity_samples]


class _Progress:
    def __init__(self, total: int, progress: Callable[[float], None] | None, cancel: CancelFlag | None):
        self.total, self.done, self.progress, self.cancel = max(total, 1), 0, progress, cancel

    def step(self, units: int = 1) -> None:
        self.done += units
        if self.progress is not None:
            self.progress(min(1.0, self.done / self.total))
        if is_cancelled(self.cancel):
            raise Cancelled("The method assessment was cancelled.")


def _faithfulness_by_modality(engine: PerturbationEngine, result: Explanation) -> dict[str, tuple[float, ...]]:
    out = {}
    for m, scores in result.segment_scores.items():
        if len(scores) < 2:
            continue
        curves = faithfulness(engine, replace(result, segment_scores={m: scores}))
        out[m] = (curves.deletion_auc, curves.insertion_auc, curves.random_deletion_auc, curves.random_insertion_auc)
    return out


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def rank_methods(methods: dict[str, MethodAssessment]) -> dict[str, list[str]]:
    """Per modality, method names best first (sets each :class:`ModalityAssessment`'s ``rank``).

    The mean over :data:`CRITERIA` of each method's rank among the methods with that modality
    (ties share ranks; a criterion nobody measured is skipped); methods failing the
    model-randomisation check come after those that pass or were not judged.
    """
    ranking: dict[str, list[str]] = {}
    modalities = sorted({m for a in methods.values() for m in a.modalities})
    for modality in modalities:
        names = [n for n, a in methods.items() if modality in a.modalities and a.modalities[modality].rows > 0]
        scores = [methods[n].modalities[modality] for n in names]
        ranks = []
        for criterion in CRITERIA:
            values = np.array([getattr(s, criterion) for s in scores], dtype=np.float64)
            if not np.isfinite(values).any():
                continue
            better_high = criterion.endswith("_gain")
            keyed = np.where(np.isfinite(values), -values if better_high else values, np.inf)
            ranks.append(rankdata(keyed))
        mean_rank = np.mean(ranks, axis=0) if ranks else np.zeros(len(names))
        failed = [s.model_randomisation_passed is False for s in scores]
        order = sorted(range(len(names)), key=lambda i: (failed[i], mean_rank[i], names[i]))
        ranking[modality] = [names[i] for i in order]
        for position, i in enumerate(order, start=1):
            scores[i].rank = position
    return ranking


def assess_methods(
    loaded: LoadedCheckpoint,
    dataset: Dataset,
    options: AssessmentOptions | None = None,
    *,
    progress: Callable[[float], None] | None = None,
    cancel: CancelFlag | None = None,
    use_cache: bool = True,
    cache_dir: Path | None = None,
    embedding_cache: EmbeddingCache | None = None,
) -> TrustReport:
    """Assess every method of ``options`` on ``loaded`` (see the module docstring); cached on disk
    under ``cache_dir`` (default ``settings().cache_dir / "trust"``). The shuffled-label head
    trains on training-split embeddings from ``embedding_cache`` (default: the configured one).

    Raises:
        ExplanationError: an unknown method, or no row with the checkpoint's modalities.
        Cancelled: ``cancel`` was set.
    """
    options = _normalised(loaded, options)
    unknown = [m for m in options.methods if m not in EXPLAINERS]
    if unknown:
        raise ExplanationError(
            f"Unknown explanation method {', '.join(map(repr, unknown))}; choose {', '.join(EXPLAINERS)}."
        )
    path = trust_cache_path(loaded.card.sha256, dataset, options, cache_dir)
    if use_cache:
        cached = cached_assessment(loaded, dataset, options, cache_dir)
        if cached is not None:
            return cached
    started = time.perf_counter()
    model, params = loaded.model, options.params
    rows, sanity_rows = _pick_rows(dataset, loaded, options)
    explainers: list[Explainer] = [EXPLAINERS[m] for m in options.methods] + ([CONTROL] if options.control else [])
    seeded = [e for e in explainers if e.seeded]
    ticker = _Progress(
        len(rows) * len(explainers) + len(sanity_rows) * (2 * len(explainers) + len(seeded)) + 1, progress, cancel
    )
    methods = {e.name: MethodAssessment(e.name, e.label, control=e is CONTROL) for e in explainers}
    faithful: dict[str, dict[str, list[tuple[float, ...]]]] = {e.name: {} for e in explainers}
    times: dict[str, list[float]] = {e.name: [] for e in explainers}
    for record in rows:
        engine = PerturbationEngine(model, load_sample(record, dataset.limits), params, cancel=cancel, task=options.task)
        target = int(np.argmax(engine.probabilities))
        for explainer in explainers:
            began = time.perf_counter()
            result = run_explainer(engine, explainer, target, explained_modalities(engine), quality=False)
            if "not_applicable" in result.metadata:
                methods[explainer.name].not_applicable = result.metadata["not_applicable"]
            else:
                times[explainer.name].append(time.perf_counter() - began)
                for m, aucs in _faithfulness_by_modality(engine, result).items():
                    faithful[explainer.name].setdefault(m, []).append(aucs)
            ticker.step()
    for name, per_modality in faithful.items():
        methods[name].seconds_per_explanation = float(np.median(times[name])) if times[name] else float("nan")
        if per_modality:
            methods[name].not_applicable = None
        for m, aucs in per_modality.items():
            means = np.mean(np.asarray(aucs), axis=0)
            methods[name].modalities[m] = ModalityAssessment(
                rows=len(aucs),
                deletion_auc=float(means[0]),
                insertion_auc=float(means[1]),
                random_deletion_auc=float(means[2]),
                random_insertion_auc=float(means[3]),
            )

    samples = [load_sample(r, dataset.limits) for r in sanity_rows]
    shuffled, fit = None, {}
    try:
        cache = embedding_cache if embedding_cache is not None else EmbeddingCache()
        records = dataset.split("train")
        train = embed_records(model, records, cache=cache, limits=dataset.limits)
        task = model.task(options.task)
        y, known = task.encode(dataset.targets(records, task.name))
        shuffled, fit = shuffled_label_model(
            model,
            train,
            (torch.from_numpy(y), torch.from_numpy(known)),
            task=task.name,
            epochs=options.shuffled_label_epochs,
            seed=options.seed,
        )
    except ExplanationError as err:
        fit = {"skipped": str(err)}
    ticker.step()
    for explainer in explainers:
        assessment = methods[explainer.name]
        if not assessment.modalities:
            ticker.step(len(samples) * (2 + explainer.seeded))
            continue
        attribute = attribution_function(explainer, params, options.task)
        checks = [
            cascading_randomisation(
                model,
                samples,
                attribute,
                method=explainer.name,
                max_encoder_steps=options.max_encoder_steps,
                seed=options.seed,
            )
        ]
        if shuffled is not None:
            checks.append(
                data_randomisation(model, train, samples, attribute, method=explainer.name, shuffled=shuffled)
            )
        ticker.step(len(samples))
        sensitivity = [
            max_sensitivity(model, s, attribute, n_perturb=options.n_perturb, seed=options.seed) for s in samples
        ]
        ticker.step(len(samples))
        variation = []
        if explainer.seeded and explainer is not CONTROL:
            variation = [
                seed_variation(model, s, explainer.name, params, seeds=options.seeds, task=options.task) for s in samples
            ]
            ticker.step(len(samples))
        for m, scores in assessment.modalities.items():
            for check in checks:
                setattr(scores, f"{check.test}_randomisation", check.score.get(m, float("nan")))
                setattr(scores, f"{check.test}_randomisation_passed", check.passed.get(m))
            scores.max_sensitivity = _mean([s["per_modality"].get(m, float("nan")) for s in sensitivity])
            if variation:
                scores.seed_rank_correlation = _mean([v["rank_correlation"].get(m, float("nan")) for v in variation])
                scores.seed_sign_flips = _mean([v["sign_flips"].get(m, float("nan")) for v in variation])
    ranking = rank_methods(methods)
    report = TrustReport(
        checkpoint=loaded.name,
        sha256=loaded.card.sha256,
        dataset_fingerprint=dataset.fingerprint,
        split=options.split,
        rows=[r.id for r in rows],
        sanity_rows=[r.id for r in sanity_rows],
        options=options.to_dict(),
        methods=methods,
        ranking=ranking,
        recommendation={m: next((n for n in names if not methods[n].control), "") for m, names in ranking.items()},
        shuffled_labels=fit,
        device=describe_device(model.device),
        runtime_s=time.perf_counter() - started,
    )
    write_text_atomic(path, json.dumps(report.to_json()))
    return report


def sample_checks(
    model,
    sample,
    methods: list[str],
    params: ExplainParams | None = None,
    target: int | str | None = None,
    *,
    n_perturb: int = 4,
    seeds: int = 3,
    max_encoder_steps: int = 2,
    control: bool = True,
    seed: int = 0,
    task: str | None = None,
) -> dict[str, dict]:
    """Sanity checks and stability of each method on ONE sample (``python -m core explain --sanity``).

    Per method (and the control): the cascading randomisation report, max-sensitivity and,
    for sampling methods, the seed variation; a method that does not apply says why. One
    sample's rank correlations are noisier than :func:`assess_methods`' averages.
    """
    params = params or ExplainParams()
    explainers = [EXPLAINERS[m] for m in methods if EXPLAINERS[m].segment_scores] + ([CONTROL] if control else [])
    out: dict[str, dict] = {}
    for explainer in explainers:
        attribute = attribution_function(explainer, params, task)
        randomisation = cascading_randomisation(
            model, sample, attribute, target, method=explainer.name, max_encoder_steps=max_encoder_steps, seed=seed
        )
        if not randomisation.score:
            reason = attribute(model, sample, randomisation.targets[0]).metadata.get("not_applicable", "")
            out[explainer.name] = {"not_applicable": reason}
            continue
        out[explainer.name] = {
            "randomisation": randomisation.to_json(),
            "max_sensitivity": max_sensitivity(model, sample, attribute, target, n_perturb=n_perturb, seed=seed),
            "seed_variation": seed_variation(model, sample, explainer.name, params, target, seeds=seeds, task=task)
            if explainer.seeded and explainer is not CONTROL
            else None,
        }
    return out
