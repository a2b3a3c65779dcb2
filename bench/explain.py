"""Explanation speed: naive library usage vs the batched engine, side by side in one run.

Naive = what the libraries' examples do: ``classifier_fn`` runs the full model
(every modality re-encoded) on each perturbation, with lime's default batch size
of 10. Ours = the engine (only the perturbed modality re-encoded, large batches).
Each encoder's throughput on the explanation's own input path gives the floor
``N / throughput`` that no perturbation method can beat (N: the evaluations the
explanation ran; engine and throughput timings are medians of :data:`TIMING_REPEATS` runs).

Then the trust figures (:mod:`bench.explain_trust`): every method's time per explanation on
that sample (SHAP, LIME, Integrated Gradients, GradientSHAP, Grad-CAM), IG's completeness on
every fusion checkpoint, and the per-modality ranking of the methods over ``ranking_samples``
test rows.

Options (all optional): ``data`` (demo folder), ``checkpoints`` (folder),
``checkpoint`` (name, default ``late``), ``lime_samples`` (1000), ``shap_evals`` (500),
``device``, ``repeats`` (modality Shapley timing repeats, 50), ``ranking_checkpoint``
(``gated``), ``ranking_samples`` (100), ``sanity_samples`` (12), ``quick``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import shap
import torch
from lime.lime_base import LimeBase
from lime.lime_image import LimeImageExplainer
from lime.lime_text import LimeTextExplainer
from sklearn.metrics import pairwise_distances

from bench import explain_trust
from core.checkpoints import load_checkpoint
from core.data import load_dataset, load_sample
from core.device import autocast, describe_device, move_to, pick_device
from core.explain import ExplainParams, PerturbationEngine
from core.explain.lime_explainer import KERNEL_WIDTH, lime_audio_scores, lime_image_scores, lime_text_scores
from core.explain.modality_shapley import modality_shapley
from core.explain.segmentation import SEGMENTATIONS, composed_prepare
from core.explain.shap_explainer import (
    ZeroMasker,
    feature_hierarchy,
    feature_layout,
    seeded_global_rng,
    shap_explanation,
)
from core.inference import BatchSize, predict_proba
from core.model import MultimodalClassifier
from core.sample import DecodedSample
from core.settings import settings
from core.timing import timed

NAIVE_BATCH = 10
"""lime_image's default ``batch_size``."""

TIMING_REPEATS = 5
"""The engine's explanations and the encoder throughput are both the median of this many
runs (one statistic on both sides of the floor ratio; a best-of-N throughput against a
single explanation run would overstate the gap). Naive runs are timed once: they are slow
and only enter the speed-up."""


def _median_timed(fn, device: torch.device, repeats: int = TIMING_REPEATS) -> tuple[Any, float]:
    """The last result of ``repeats`` device-synchronised runs of ``fn`` and their median time."""
    runs = [timed(fn, device) for _ in range(repeats)]
    return runs[-1][0], float(np.median([seconds for _, seconds in runs]))


def encoder_throughput(
    model: MultimodalClassifier, sample: DecodedSample, modality: str, params: ExplainParams
) -> dict[str, Any]:
    """Samples/s of ``modality``'s encoder on the inputs an explanation feeds it, at the best batch size.

    The inputs are the sample's own segments, each kept with probability 1/2 and composed
    as the engine composes them (blurred image regions, dropped tokens, silenced
    spectrogram blocks): an encoder's speed depends on what it reads (shorter texts are
    faster; masked images run about 20% slower than the clean one repeated on this CPU),
    so only these inputs give a floor ``N / throughput`` that the explanation could meet.
    Builtin log-mel audio is fed spectrograms (``prepare_spectrogram``), everything else
    decoded values (``prepare``); compose, collate, transfer and forward are included.
    """
    encoder = model.encoders[modality]
    segmentation = SEGMENTATIONS.get(modality, sample.get(modality), encoder, params)
    prepare = composed_prepare(encoder, segmentation)
    rng = np.random.default_rng(params.seed)
    best: dict[str, Any] = {"samples_per_s": 0.0, "batch_size": 0}
    for batch_size in (16, 64, 256):
        masks = rng.random((batch_size, segmentation.n_segments)) < 0.5

        def run(masks: np.ndarray = masks) -> None:
            inputs = encoder.collate([prepare(v) for v in segmentation.compose(masks)])
            with torch.inference_mode(), autocast(model.device):
                encoder(move_to(inputs, model.device)).float().cpu()

        run()  # warm-up
        elapsed = _median_timed(run, model.device)[1]
        rate = batch_size / elapsed
        if rate > best["samples_per_s"]:
            best = {"samples_per_s": rate, "batch_size": batch_size}
    return best


def _naive_proba(model: MultimodalClassifier, samples: list[DecodedSample]) -> np.ndarray:
    return predict_proba(model, samples, batch=BatchSize(NAIVE_BATCH))


def _pick_sample(data_dir: Path, model: MultimodalClassifier) -> DecodedSample:
    """The first clean record with every modality of ``model``: from the test split, else val, else train."""
    dataset = load_dataset(data_dir)
    for split in ("test", "val", "train"):
        for record in dataset.split(split):
            states = [record.extras.get(f"{m}_state") for m in model.modalities]
            present = all(getattr(record, m) is not None for m in model.modalities)
            if present and not any(s == "corrupted" for s in states):
                return load_sample(record)
    raise ValueError(f"No uncorrupted record with {', '.join(model.modalities)} in {data_dir}.")


def _side_by_side(naive_s: float, ours_s: float, n: int, throughput: float) -> dict[str, float]:
    floor = n / throughput
    return {
        "naive_s": naive_s,
        "ours_s": ours_s,
        "speedup": naive_s / ours_s,
        "throughput_floor_s": floor,
        "ours_over_floor": ours_s / floor,
    }


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Measure naive vs engine explanations on one clean demo test sample; returns a JSON-ready dict."""
    data_dir = Path(options.get("data") or settings().demo_data)
    checkpoint_dir = Path(options.get("checkpoints") or settings().checkpoints)
    device = pick_device(options.get("device"))
    loaded = load_checkpoint(checkpoint_dir / options.get("checkpoint", "late"), device=device)
    model = loaded.model
    sample = _pick_sample(data_dir, model)
    lime_samples = int(options.get("lime_samples", 1000))
    shap_evals = int(options.get("shap_evals", 500))
    params = ExplainParams(lime_samples=lime_samples, shap_evals=shap_evals)
    target = int(predict_proba(model, [sample])[0].argmax())
    throughput = {m: encoder_throughput(model, sample, m, params) for m in model.modalities}
    # One-off costs (shap's numba JIT, lazy imports) are paid before any timing.
    warm = PerturbationEngine(model, sample, replace(params, shap_evals=10, lime_samples=10, modalities=("image",)))
    shap_explanation(warm, target, ["image"])
    lime_image_scores(warm, target)

    results: dict[str, Any] = {
        "device": describe_device(device),
        "checkpoint": loaded.name,
        "sample": sample.id,
        "encoder_throughput": throughput,
        "settings": {"lime_samples": lime_samples, "shap_evals": shap_evals, "naive_batch_size": NAIVE_BATCH},
    }

    def engine() -> PerturbationEngine:
        return PerturbationEngine(model, sample, params)

    # LIME image
    def naive_lime_image() -> None:
        LimeImageExplainer(random_state=0).explain_instance(
            sample.image,
            lambda images: _naive_proba(model, [replace(sample, image=i) for i in images]),
            labels=(target,),
            top_labels=None,
            num_samples=lime_samples,
        )

    naive_s = timed(naive_lime_image, device)[1]
    ours_s = _median_timed(lambda: lime_image_scores(engine(), target), device)[1]
    results["lime_image"] = _side_by_side(naive_s, ours_s, lime_samples, throughput["image"]["samples_per_s"])

    # LIME text
    def naive_lime_text() -> None:
        LimeTextExplainer(random_state=0).explain_instance(
            sample.text,
            lambda texts: _naive_proba(model, [replace(sample, text=t) for t in texts]),
            labels=(target,),
            num_samples=lime_samples,
        )

    naive_s = timed(naive_lime_text, device)[1]
    ours_s = _median_timed(lambda: lime_text_scores(engine(), target), device)[1]
    results["lime_text"] = _side_by_side(naive_s, ours_s, lime_samples, throughput["text"]["samples_per_s"])

    # LIME audio: audioLIME-style time segments of the waveform, full model per perturbation.
    def naive_lime_audio() -> None:
        waveform = sample.audio
        segment = np.minimum(
            np.arange(len(waveform)) * params.audio_time_segments // len(waveform), params.audio_time_segments - 1
        )
        data = np.random.RandomState(0).randint(0, 2, (lime_samples, params.audio_time_segments))
        data[0] = 1
        labels = np.concatenate(
            [
                _naive_proba(
                    model, [replace(sample, audio=waveform * row[segment]) for row in data[i : i + NAIVE_BATCH]]
                )
                for i in range(0, lime_samples, NAIVE_BATCH)
            ]
        )
        distances = pairwise_distances(data, data[:1], metric="cosine").ravel()
        LimeBase(lambda d: np.sqrt(np.exp(-(d**2) / KERNEL_WIDTH**2)), random_state=0).explain_instance_with_data(
            data, labels, distances, target, params.audio_time_segments
        )

    naive_s = timed(naive_lime_audio, device)[1]
    ours_s = _median_timed(lambda: lime_audio_scores(engine(), target), device)[1]
    results["lime_audio"] = _side_by_side(naive_s, ours_s, lime_samples, throughput["audio"]["samples_per_s"])

    # SHAP image, both algorithms: naive = the same shap explainer calling the full model on
    # every masked image in lime's default batches; the floor counts the evaluations ours ran.
    image_engine = PerturbationEngine(model, sample, replace(params, modalities=("image",)))
    segmentation = image_engine.segmentation("image")
    clustering = feature_hierarchy(image_engine, feature_layout(image_engine, ["image"]))

    def naive_full_model(masks: np.ndarray) -> np.ndarray:
        images = segmentation.compose(np.atleast_2d(masks) > 0.5)
        return _naive_proba(model, [replace(sample, image=i) for i in images])[:, target]

    naive_explainers = {
        "partition": lambda: shap.PartitionExplainer(naive_full_model, ZeroMasker(clustering)),
        "permutation": lambda: shap.PermutationExplainer(naive_full_model, ZeroMasker()),
    }
    for algorithm, make_naive in naive_explainers.items():
        algorithm_params = replace(params, shap_algorithm=algorithm)

        def naive_shap_image(make_naive=make_naive) -> None:
            with seeded_global_rng(0):
                make_naive()(np.ones((1, segmentation.n_segments)), max_evals=shap_evals, silent=True)

        naive_s = timed(naive_shap_image, device)[1]
        explanation, ours_s = _median_timed(
            lambda algorithm_params=algorithm_params: shap_explanation(
                PerturbationEngine(model, sample, algorithm_params), target, ["image"]
            ),
            device,
        )
        key = "shap_image" if algorithm == params.shap_algorithm else f"shap_image_{algorithm}"
        results[key] = {
            "algorithm": algorithm,
            **_side_by_side(naive_s, ours_s, explanation.metadata["evaluations"], throughput["image"]["samples_per_s"]),
            "evaluations": explanation.metadata["evaluations"],
            "model_calls": explanation.metadata["model_calls"],
        }

    # Modality Shapley: 2^M coalitions in one classify call vs 2^M full predictions.
    shapley_engine = engine()
    latencies = [
        timed(lambda: modality_shapley(shapley_engine, target), device)[1] for _ in range(int(options.get("repeats", 50)))
    ]

    def naive_modality() -> None:
        for mask in range(2 ** len(model.modalities)):
            kept = {m: sample.get(m) if mask >> j & 1 else None for j, m in enumerate(model.modalities)}
            predict_proba(model, [replace(sample, **kept)])

    results["modality_shapley"] = {
        "ours_median_ms": 1000 * float(np.median(latencies)),
        "ours_p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "naive_ms": 1000 * timed(naive_modality, device)[1],
        "encode_once_ms": 1000 * timed(engine, device)[1],
    }
    results.update(explain_trust.run(loaded, load_dataset(data_dir), checkpoint_dir, options))
    return results
