"""Missing-modality table, corruption sweeps, modality reliance; corrupted inputs encoded once."""

import numpy as np
import pytest

from core.checkpoints import load_checkpoint
from core.evaluate import SWEEP_METRICS
from core.evaluate.robustness import corrupted_cache_id
from tests.core.evaluate.conftest import FAST


def test_missing_modality_table_has_every_subset(report):
    early = report.by_name("early")
    subsets = [tuple(r.modalities) for r in early.missing_modality]
    assert len(subsets) == 7 == len(set(subsets))
    assert subsets[0] == ("audio", "image", "text")
    assert early.missing_modality[0].values == early.metrics.values


def test_corruption_severity_zero_is_clean_and_others_change_predictions(report):
    early = report.by_name("early")
    assert [s.name for s in early.corruptions] == ["image_noise", "image_occlusion", "audio_noise", "text_dropout"]
    clean = {name: early.metrics.values[name] for name in SWEEP_METRICS}
    for sweep in early.corruptions:
        assert len(sweep.values) >= 6 and sweep.level_labels[0] == "clean"
        assert sweep.values[0] == pytest.approx(clean)
    image_noise = early.corruptions[0]
    assert any(v["log_loss"] != image_noise.values[0]["log_loss"] for v in image_noise.values[1:])
    # early ignores text: dropping words cannot change anything
    assert all(v == early.corruptions[3].values[0] for v in early.corruptions[3].values)


def test_reliance_of_an_ignored_modality_is_zero(report):
    reliance = {r.modality: r for r in report.by_name("early").reliance}
    assert reliance["text"].mean_drop == pytest.approx(0.0, abs=1e-12)
    assert len(reliance["text"].drops) == FAST.reliance_repeats


def test_corrupted_embeddings_are_shared_between_checkpoints(report, encode_calls):
    # corruptions x non-clean severities, encoded once for both checkpoints
    assert len(encode_calls) == 4 * 5


def test_corrupted_embeddings_go_to_the_store_and_equal_those_computed_in_memory(tiny, report, tmp_path):
    """With a store, the sweeps are computed once and read back by later
    evaluations: what torchrun ranks rely on. The numbers equal those computed without a store."""
    from core.encoders.cache import EmbeddingCache
    from core.evaluate import evaluate

    store = EmbeddingCache(tmp_path)
    stored = evaluate([tiny.paths["early"], tiny.paths["late"]], tiny.dataset, "test", FAST, embedding_cache=store)
    encoder = load_checkpoint(tiny.paths["early"]).model.encoders["image"]
    # Keyed by content: the demo's test split repeats one image, corrupted (and stored) once.
    images = {r.content_hash("image") for r in tiny.dataset.split("test") if r.image is not None}
    assert store.count(corrupted_cache_id(encoder.cache_id(), "image_noise", 3, FAST.seed)) == len(images)
    for ours, theirs in zip(stored.checkpoints, report.checkpoints, strict=True):
        assert [c.to_json() for c in ours.corruptions] == [c.to_json() for c in theirs.corruptions]


@pytest.mark.parametrize("corruption", ["image_noise", "audio_noise"])
def test_corrupted_embeddings_do_not_depend_on_the_number_of_workers(tiny, monkeypatch, corruption):
    """Each (sample, severity) draws its own noise, so worker processes (and how the rows are
    chunked between them) change nothing but float rounding: workers also run the encoder, one
    thread each, which sums in another order than this process's threads (other noise would
    differ by far more than 1e-5)."""
    import torch

    from core import parallel
    from core.evaluate import SplitInputs, robustness
    from core.evaluate.robustness import CORRUPTIONS

    monkeypatch.setattr(robustness, "SWEEP_CHUNK", 8)  # several chunks, so the tiny split gets workers
    used = []
    count = parallel.worker_count
    monkeypatch.setattr(parallel, "worker_count", lambda *a, **kw: used.append(count(*a, **kw)) or used[-1])
    sweep = CORRUPTIONS[corruption]
    model = load_checkpoint(tiny.paths["late"]).model
    encoder = model.encoders[sweep.modality]
    records = tiny.dataset.split("test")
    rows = [i for i, r in enumerate(records) if getattr(r, sweep.modality) is not None]
    out = {}
    for workers in ("0", "2"):
        monkeypatch.setenv("FUSION_WORKERS", workers)
        inputs = SplitInputs(tiny.dataset, "test")
        out[workers] = [
            inputs.corrupted_embeddings(encoder, sweep, severity, rows, FAST.seed, torch.device("cpu"))
            for severity in range(1, len(sweep.levels))
        ]
    for here, there in zip(out["0"], out["2"], strict=True):
        assert torch.allclose(here, there, rtol=1e-5, atol=1e-5)
    assert used == [0, 2]
    assert not torch.equal(out["0"][0], out["0"][-1])  # the severities differ


def test_a_large_split_is_swept_on_one_seeded_sample_of_rows_shared_by_every_checkpoint(tiny, report):
    """``sweep_rows`` caps the rows a sweep re-encodes and scores: the same seeded rows for each
    checkpoint, severity 0 equal to the clean metrics of just those rows, and the note says so."""
    from dataclasses import replace

    from core.evaluate import evaluate
    from core.evaluate.robustness import sweep_sample
    from core.evaluate.scoring import sweep_metrics
    from core.figures.evaluation import robustness_note

    n = report.by_name("early").n_rows
    assert all(not s.sampled and s.n_scored == s.n_rows == n for r in report.checkpoints for s in r.corruptions)
    options = replace(FAST, sweep_rows=n // 2)
    rows = sweep_sample(n, options)
    assert len(rows) == n // 2 and list(rows) == sorted(set(rows.tolist()))
    assert rows.tolist() == sweep_sample(n, options).tolist()  # seeded
    assert sweep_sample(n, replace(FAST, sweep_rows=0)) is None and sweep_sample(n, replace(FAST, sweep_rows=n)) is None

    sampled = evaluate([tiny.paths["early"], tiny.paths["late"]], tiny.dataset, "test", options, embedding_cache=False)
    for result in sampled.checkpoints:
        classes = result.classes
        y = [classes.index(result.samples[i].label) for i in rows]
        proba = [result.samples[i].probabilities for i in rows]
        clean = sweep_metrics(np.array(y), np.array(proba), len(classes), FAST.ece_bins)
        for sweep in result.corruptions:
            assert sweep.sampled and (sweep.n_scored, sweep.n_rows) == (n // 2, n)
            assert sweep.values[0] == pytest.approx(clean, abs=1e-5)  # probabilities are stored to 6 places
    note = robustness_note(sampled)
    assert f"seeded sample of {n // 2:,} of the split's {n:,} rows" in note
    assert "sample" not in robustness_note(report)


def test_from_a_server_thread_the_fork_servers_workers_encode_the_sweeps_too(tiny, monkeypatch):
    """A dashboard request runs on a thread: its workers start from the fork server, each gets a
    copy of the encoder, and their embeddings equal this process's up to float rounding."""
    import threading

    import torch

    from core import parallel
    from core.evaluate import SplitInputs, robustness
    from core.evaluate.robustness import CORRUPTIONS

    monkeypatch.setattr(robustness, "SWEEP_CHUNK", 8)
    sweep = CORRUPTIONS["audio_noise"]
    encoder = load_checkpoint(tiny.paths["late"]).model.encoders["audio"]
    records = tiny.dataset.split("test")
    rows = [i for i, r in enumerate(records) if r.audio is not None]

    def embeddings() -> torch.Tensor:
        return SplitInputs(tiny.dataset, "test").corrupted_embeddings(encoder, sweep, 2, rows, FAST.seed, torch.device("cpu"))

    monkeypatch.setenv("FUSION_WORKERS", "0")
    here = embeddings()
    monkeypatch.setenv("FUSION_WORKERS", "2")
    out = {}

    def request() -> None:
        out["method"] = parallel.start_method()
        out["embeddings"] = embeddings()

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    assert out["method"] == "forkserver"
    assert torch.allclose(out["embeddings"], here, rtol=1e-5, atol=1e-5)
