"""The one batched inference path: batching does not change answers, out-of-memory halves, predict()."""

import numpy as np
import pytest
import torch

from core.checkpoints import load_checkpoint
from core.data import load_sample
from core.inference import BatchSize, classify_proba, encode, predict, predict_proba, run_in_batches
from core.sample import DecodedSample
from tests.core.toy import toy_model, toy_sample


def test_batch_size_does_not_change_probabilities():
    model = toy_model("gated")
    samples = [toy_sample(seed) for seed in range(5)]
    together = predict_proba(model, samples, batch=BatchSize(5))
    apart = predict_proba(model, samples, batch=BatchSize(2))
    np.testing.assert_allclose(together, apart, atol=1e-6)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-6)
    assert predict_proba(model, []).shape == (0, 3)


def test_classify_proba_equals_the_whole_model_and_gives_logits():
    model = toy_model("attention")
    samples = [toy_sample(seed) for seed in range(3)]
    prepared = model.prepare(samples)
    with torch.inference_mode():
        embeddings = model.embed(prepared)
    probabilities = classify_proba(model, embeddings, prepared.present, batch=BatchSize(2))
    np.testing.assert_allclose(probabilities, predict_proba(model, samples), atol=1e-6)
    logits = classify_proba(model, embeddings, prepared.present, logits=True)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), -1).numpy(), probabilities, atol=1e-6)


def test_out_of_memory_halves_and_the_smaller_size_is_kept():
    sizes = []

    def step(start: int, stop: int) -> int:
        sizes.append(stop - start)
        if stop - start > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return stop - start

    batch = BatchSize(16)
    assert sum(run_in_batches(step, 10, batch, torch.device("cpu"))) == 10
    assert sizes[:3] == [10, 5, 2] and batch.value == 2
    with pytest.raises(RuntimeError, match="shape"):
        run_in_batches(lambda a, b: (_ for _ in ()).throw(RuntimeError("shape mismatch")), 4, BatchSize(4), torch.device("cpu"))


def test_encode_reads_a_lazy_sequence_batch_by_batch():
    model = toy_model()
    images = [toy_sample(seed).image for seed in range(5)]
    seen = []

    class Lazy:
        def __len__(self):
            return len(images)

        def __getitem__(self, index):
            seen.append(index)
            return images[index]

    vectors = encode(model.encoders["image"], Lazy(), torch.device("cpu"), batch=BatchSize(2))
    assert vectors.shape == (5, 16) and len(seen) == 3  # three slices, never the whole list at once


def test_worker_processes_prepare_and_encode_ahead_and_change_nothing_but_rounding(small_demo, small_checkpoints):
    """Forked workers also run the encoder, single-threaded: the same embeddings as this
    process's multi-threaded kernels up to float rounding (sums taken in another order)."""
    from core.embeddings import embed_records
    from core.inference import encodes_in_workers

    assert encodes_in_workers(torch.device("cpu"), False, None)

    model = load_checkpoint(small_checkpoints["early"]).model
    records = small_demo.split("train")[:40]
    here = embed_records(model, records, workers=0, batch=BatchSize(8))
    chunks = []
    workers = embed_records(model, records, workers=2, batch=BatchSize(8), progress=lambda done, total: chunks.append(done))
    for m in model.modalities:
        assert torch.allclose(here.embeddings[m], workers.embeddings[m], rtol=1e-5, atol=1e-5)
    assert chunks == sorted(chunks) and chunks[-1] == sum(len(r.present()) for r in records)


def test_a_file_broken_since_validation_fails_with_its_own_message_from_a_worker(small_demo, tmp_path):
    from core.data import modality_values
    from core.errors import InputError

    model = toy_model()
    path = tmp_path / "broken.png"
    path.write_bytes(b"not an image")
    good = [r for r in small_demo.records if r.image is not None][:20]
    values = modality_values(good, "image")
    values.sources[13] = str(path)
    with pytest.raises(InputError, match="not an image we can read"):
        encode(model.encoders["image"], values, torch.device("cpu"), batch=BatchSize(4), workers=2)


def test_predict_names_used_and_ignored_modalities(small_checkpoints, small_demo):
    loaded = load_checkpoint(small_checkpoints["image-only"])
    sample = load_sample(next(r for r in small_demo.split("test") if r.image and r.text))
    prediction = predict(loaded, sample)
    assert prediction.used_modalities == ["image"] and "text" in prediction.ignored_modalities
    assert prediction.prediction == prediction.ranking()[0][0] and prediction.confidence == max(prediction.probabilities)
    assert sum(prediction.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert predict(loaded, DecodedSample(text="only text")) is None


def test_texts_are_prepared_in_process_unless_workers_are_asked_for(monkeypatch):
    from core import parallel

    def no_workers(*args, **kwargs):
        raise AssertionError("texts started worker processes")

    monkeypatch.setattr(parallel, "worker_count", no_workers)
    assert parallel.workers_for("text") == 0 and parallel.workers_for("text", 2) == 2
    assert parallel.workers_for("image") is None
    model = toy_model()
    vectors = encode(model.encoders["text"], ["a cat", "a dog"] * 300, torch.device("cpu"), batch=BatchSize(8), workers=parallel.workers_for("text"))
    assert vectors.shape[0] == 600


@pytest.mark.parametrize("fusion", ["early", "late", "gated", "attention", "tensor", "lowrank", "int8"])
def test_a_view_on_projections_classifies_like_the_model_and_shares_its_weights(fusion):
    from core.compress.storage import quantize_int8
    from core.inference import on_projections

    model = toy_model("late" if fusion == "int8" else fusion)
    model = quantize_int8(model).eval() if fusion == "int8" else model
    generator = torch.Generator().manual_seed(1)
    embeddings = {m: torch.randn(50, 16, generator=generator) for m in model.modalities}
    present = torch.rand(50, 3, generator=generator) > 0.3
    view, projections = on_projections(model, embeddings, batch=BatchSize(7))  # batches do not matter
    if fusion == "int8":  # each batch quantised with its own scale: not row by row, so nothing is projected
        assert view is model and projections is embeddings
        return
    assert {m: p.shape for m, p in projections.items()} == {m: (50, model.fusion.projection_dim) for m in model.modalities}
    # Rows repeated and masked after projecting, as the coalition, EMAP and reliance analyses do
    order = torch.randint(0, 50, (120,), generator=generator)
    expected = classify_proba(model, {m: e[order] for m, e in embeddings.items()}, present[order], logits=True)
    got = classify_proba(view, {m: p[order] for m, p in projections.items()}, present[order], logits=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    shared = {id(p) for p in view.parameters()}
    assert shared < {id(p) for p in model.parameters()}  # the same tensors, none copied
    assert all(type(m) is not torch.nn.Identity for m in model.fusion.project.values())  # the model is untouched
