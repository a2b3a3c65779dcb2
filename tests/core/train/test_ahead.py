"""Stage 2's inputs prepared ahead, during stage 1's tail: the same embeddings, less waiting."""

import torch

from core.embeddings import embed_records
from core.encoders.audio_cnn import BuiltinAudioEncoder
from core.model import MultimodalClassifier
from core.train.ahead import InputsAhead


def _audio_model(classes):
    from core.fusion import build_fusion

    torch.manual_seed(0)
    encoder = BuiltinAudioEncoder().eval()
    fusion = build_fusion("early", in_dims={"audio": encoder.out_dim}, num_classes=len(classes), hidden=16, dropout=0.0)
    return MultimodalClassifier({"audio": encoder}, fusion, list(classes)).eval()


def _prepare_all(ahead, model, records, limits):
    for _ in ahead.steps([("audio", model.encoders["audio"], records)], limits):
        pass


def test_inputs_prepared_ahead_give_the_same_embeddings(small_demo):
    records = small_demo.split("train")
    model = _audio_model(small_demo.classes)
    ahead = InputsAhead()
    half = [r for r in records if r.audio is not None][: len(records) // 2]
    _prepare_all(ahead, model, half, small_demo.limits)
    assert 0 < ahead.rows() <= len(half)
    for workers in (0, 2):
        plain = embed_records(model, records, limits=small_demo.limits, workers=workers)
        early = embed_records(model, records, limits=small_demo.limits, workers=workers, prepared=ahead.inputs)
        assert torch.equal(plain.embeddings["audio"], early.embeddings["audio"])


def test_a_row_prepared_ahead_is_not_decoded_again(small_demo):
    """The prepared input is what the encoder sees: a file replaced after its input was prepared
    still embeds as it was (stage 1 and 2 see the dataset as validated)."""
    records = [r for r in small_demo.split("train") if r.audio is not None][:4]
    model = _audio_model(small_demo.classes)
    ahead = InputsAhead()
    _prepare_all(ahead, model, records[:1], small_demo.limits)
    key = records[0].content_hash("audio")
    ahead.inputs["audio"][key] = torch.zeros_like(ahead.inputs["audio"][key])
    out = embed_records(model, records, limits=small_demo.limits, workers=0, prepared=ahead.inputs)
    with torch.no_grad():
        expected = model.encoders["audio"](torch.zeros(1, *ahead.inputs["audio"][key].shape))
    assert torch.allclose(out.embeddings["audio"][0], expected[0], atol=1e-6)


def test_the_budget_bounds_what_is_held(small_demo):
    records = [r for r in small_demo.split("train") if r.audio is not None]
    model = _audio_model(small_demo.classes)
    one = model.encoders["audio"].prepare(torch.zeros(16000).numpy()).untyped_storage().nbytes()
    ahead = InputsAhead(budget_bytes=3 * one)
    _prepare_all(ahead, model, records, small_demo.limits)
    assert ahead.rows() == 3 and ahead.used_bytes == 3 * one
    ahead.drop("audio")
    assert ahead.rows() == 0 and ahead.used_bytes == 0


def test_a_dropped_modality_is_left(small_demo):
    """Once a modality's embeddings are stored (its training finished while others run), its
    inputs are dropped and nothing more of it is prepared."""
    records = [r for r in small_demo.split("train") if r.audio is not None]
    model = _audio_model(small_demo.classes)
    ahead = InputsAhead()
    steps = ahead.steps([("audio", model.encoders["audio"], records)], small_demo.limits)
    next(steps)
    assert 0 < ahead.rows() < len(records)
    ahead.drop("audio")
    assert next(steps, "done") == "done"
    assert ahead.rows() == 0 and ahead.used_bytes == 0
