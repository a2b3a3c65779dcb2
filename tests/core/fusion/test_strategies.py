"""Shapes, missing-modality handling and invariants of every fusion strategy."""

import pytest
import torch

from core.fusion import FUSIONS, build_fusion

DIMS = {"audio": 12, "image": 20, "text": 16}
NUM_CLASSES = 5


def _inputs(batch=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = {m: torch.randn(batch, d, generator=g) for m, d in DIMS.items()}
    present = torch.tensor(
        [[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [1, 1, 0]], dtype=torch.bool
    )[:batch]
    return emb, present


@pytest.mark.parametrize("name", list(FUSIONS))
def test_output_shape_and_finite(name):
    fusion = build_fusion(name, in_dims=DIMS, num_classes=NUM_CLASSES, hidden=32).eval()
    emb, present = _inputs()
    out = fusion(emb, present)
    assert out.shape == (6, fusion.out_dim)
    assert fusion.out_dim == (NUM_CLASSES if fusion.outputs_logits else 32)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(FUSIONS))
def test_absent_modality_values_are_ignored(name):
    """Whatever an absent modality's embedding holds must not change the output."""
    fusion = build_fusion(name, in_dims=DIMS, num_classes=NUM_CLASSES, hidden=32).eval()
    emb, present = _inputs()
    garbage = {m: e.clone() for m, e in emb.items()}
    for j, m in enumerate(sorted(DIMS)):
        garbage[m][~present[:, j]] = 1e3 * torch.randn_like(garbage[m][~present[:, j]])
    with torch.no_grad():
        torch.testing.assert_close(fusion(emb, present), fusion(garbage, present))


@pytest.mark.parametrize("name", list(FUSIONS))
def test_present_modality_changes_output(name):
    fusion = build_fusion(name, in_dims=DIMS, num_classes=NUM_CLASSES, hidden=32).eval()
    emb, present = _inputs()
    changed = {m: e.clone() for m, e in emb.items()}
    changed["image"][0] = torch.randn(DIMS["image"]) * 3  # not a constant shift: LayerNorm removes those
    with torch.no_grad():
        assert not torch.allclose(fusion(emb, present)[0], fusion(changed, present)[0])


@pytest.mark.parametrize("name", list(FUSIONS))
def test_rows_are_independent_in_eval(name):
    """A row's output does not depend on the other rows of the batch."""
    fusion = build_fusion(name, in_dims=DIMS, num_classes=NUM_CLASSES, hidden=32).eval()
    emb, present = _inputs()
    with torch.no_grad():
        full = fusion(emb, present)
        single = torch.cat([fusion({m: e[i : i + 1] for m, e in emb.items()}, present[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(full, single, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(FUSIONS))
def test_single_modality_works(name):
    fusion = build_fusion(name, in_dims={"image": 8}, num_classes=3, hidden=16).eval()
    out = fusion({"image": torch.randn(4, 8)}, torch.tensor([[True], [False], [True], [True]]))
    assert out.shape[0] == 4 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(FUSIONS))
def test_config_round_trip(name):
    fusion = build_fusion(name, in_dims=DIMS, num_classes=NUM_CLASSES, hidden=24)
    rebuilt = build_fusion(name, **fusion.config())
    assert {k: v.shape for k, v in fusion.state_dict().items()} == {k: v.shape for k, v in rebuilt.state_dict().items()}


def test_late_fusion_uses_only_present_heads_and_prior_when_empty():
    fusion = build_fusion("late", in_dims=DIMS, num_classes=NUM_CLASSES, hidden=16).eval()
    emb, present = _inputs()
    with torch.no_grad():
        out = fusion(emb, present)
        torch.testing.assert_close(out[4], fusion.prior)
        # One modality present: the output is exactly that modality's head.
        h = fusion.projected(emb, present)
        torch.testing.assert_close(out[1], fusion.heads["audio"](h["audio"])[1])


def test_tensor_fusion_outer_product_size():
    fusion = build_fusion("tensor", in_dims=DIMS, num_classes=NUM_CLASSES, hidden=16, rank_dim=4)
    assert fusion.mix[0].in_features == 5**3


def test_gated_gates_sum_to_one():
    fusion = build_fusion("gated", in_dims=DIMS, num_classes=NUM_CLASSES, hidden=16).eval()
    emb, present = _inputs()
    with torch.no_grad():
        gates = fusion.gates(emb, present)
    torch.testing.assert_close(gates.sum(dim=1), torch.ones(6))


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown fusion strategy 'foo'"):
        build_fusion("foo", in_dims=DIMS, num_classes=2)
