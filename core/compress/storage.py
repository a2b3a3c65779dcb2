"""How a checkpoint's weights file holds its tensors, and what a model holds in memory.

Three storages, named in the card's ``compression.storage`` and sealed in the weights file:

- ``float32``: every trained tensor as it is (ordinary, pruned and distilled checkpoints);
- ``float16``: floating tensors rounded to half precision on disk, widened back to float32
  at load (CPU kernels for half precision are slow, so only the disk size halves);
- ``int8``: every ``nn.Linear`` of the stored parts (built-in encoders, fusion, head) as
  dynamically quantised by :mod:`torch.ao.quantization`: its weight as ``int8`` values plus
  per-output-channel ``float64`` scales and ``int8`` zero points, its bias as float32. At
  load the card's architecture is quantised the same way (a deterministic module swap) and
  the stored integers are put back exactly, so nothing is re-quantised and the file holds a
  quarter of the bytes of those weights. Plain tensors only: nothing is ever unpickled.

Frozen pretrained encoders are never stored (their weights come from their package) and are
never quantised: their embeddings are cached under a name, not a weight hash, so quantising
them would mix float and int8 embeddings in the cache.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from core.checkpoints import checkpoint_state

STORAGES = ("float32", "float16", "int8")
INT8_SUFFIXES = ("weight", "weight_scale", "weight_zero_point", "bias")
"""The tensors of one quantised linear layer ``<prefix>.<suffix>`` (no bias tensor without a bias)."""


def _frozen_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Where a model's frozen pretrained encoders sit (none in a module that is not a model)."""
    modalities = getattr(model, "modalities", [])
    return tuple(f"encoders.{m}." for m in modalities if not model.encoders[m].trainable)


def quantizable_linears(model: nn.Module) -> list[str]:
    """Names of the ``nn.Linear`` modules int8 storage quantises: those of the stored parts.

    Subclasses are left out on purpose, as :func:`torch.ao.quantization.quantize_dynamic` does
    (attention's output projection is one that has no dynamic kernel).
    """
    frozen = _frozen_prefixes(model)
    return [name for name, m in model.named_modules() if type(m) is nn.Linear and not f"{name}.".startswith(frozen)]


def _quantized_linears(model: nn.Module) -> dict[str, nn.Module]:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return {name: m for name, m in model.named_modules() if isinstance(m, DynamicLinear)}


@contextlib.contextmanager
def _quiet_quantization() -> Iterator[None]:
    """torch.ao.quantization announces its move to torchao on every call; in this torch it is
    still the maintained eager-mode API, and the notice would reach every user of a checkpoint."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.* deprecated", category=UserWarning)
        yield


def _plain_transformer_path(module: nn.Module, args: tuple) -> None:
    """A no-op pre-hook: a transformer layer with hooks takes its plain path, which quantised
    feed-forward layers need (the fused fast path reads ``linear.weight`` as a tensor)."""
    return None


def is_quantized(model: nn.Module) -> bool:
    """Whether ``model`` holds dynamically quantised layers (an int8 checkpoint): no gradients flow through them."""
    return bool(_quantized_linears(model))


def quantize_int8(model: nn.Module) -> nn.Module:
    """Swap the stored parts' linear layers for dynamically quantised ones (per-channel
    symmetric ``qint8`` weights, activations quantised on the fly), in place; CPU only."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = dict.fromkeys(quantizable_linears(model), per_channel_dynamic_qconfig)
    with _quiet_quantization():
        quantize_dynamic(model, spec, inplace=True)
    for layer in model.modules():
        if isinstance(layer, nn.TransformerEncoderLayer) and any(
            type(child).__module__.startswith("torch.ao.nn.quantized") for child in layer.children()
        ):
            layer.register_forward_pre_hook(_plain_transformer_path)
    return model


def stored_architecture(model: nn.Module, storage: str) -> nn.Module:
    """A freshly built model turned into the architecture whose tensors ``storage`` holds."""
    return quantize_int8(model) if storage == "int8" else model


def stored_state(model: nn.Module, storage: str) -> dict[str, torch.Tensor]:
    """The tensors a weights file of ``storage`` holds for ``model`` (already in that architecture)."""
    if storage == "float16":
        return {k: v.half() if v.is_floating_point() else v for k, v in checkpoint_state(model).items()}
    if storage != "int8":
        return checkpoint_state(model)
    quantized = _quantized_linears(model)
    inside = tuple(f"{name}." for name in quantized)
    frozen = _frozen_prefixes(model)
    state = {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if isinstance(v, torch.Tensor) and not k.startswith(frozen) and not k.startswith(inside)
    }
    for name, layer in quantized.items():
        weight = layer.weight()
        state[f"{name}.weight"] = weight.int_repr().contiguous()
        state[f"{name}.weight_scale"] = weight.q_per_channel_scales().to(torch.float64).contiguous()
        state[f"{name}.weight_zero_point"] = weight.q_per_channel_zero_points().to(torch.int8).contiguous()
        if layer.bias() is not None:
            state[f"{name}.bias"] = layer.bias().detach().float().contiguous()
    return state


def restore_state(model: nn.Module, state: dict[str, torch.Tensor], storage: str) -> None:
    """Load tensors checked against :func:`stored_state` of the same architecture into ``model``."""
    if storage == "float16":
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    if storage != "int8":
        model.load_state_dict(state, strict=False)
        return
    quantized = _quantized_linears(model)
    inside = tuple(f"{name}." for name in quantized)
    # A quantised layer reads its own entries (and their format version) whenever a state dict is
    # loaded: start from the model's own state dict, which carries both, and replace the rest.
    full = model.state_dict()
    full.update({k: v for k, v in state.items() if not k.startswith(inside)})
    model.load_state_dict(full)
    for name, layer in quantized.items():
        values = state[f"{name}.weight"]
        scales = state[f"{name}.weight_scale"]
        zero_points = state[f"{name}.weight_zero_point"].long()
        # Dequantised then quantised with the stored scales: the very same integers come back.
        dense = ((values.double() - zero_points.unsqueeze(1)) * scales.unsqueeze(1)).float()
        with _quiet_quantization():
            weight = torch.quantize_per_channel(dense, scales, zero_points, 0, torch.qint8)
            layer.set_weight_bias(weight, state.get(f"{name}.bias"))


def min_stored_bytes(parts: Iterable[nn.Module], storage: str) -> int:
    """The fewest bytes a weights file of ``storage`` needs for ``parts`` (built on the ``meta``
    device, so nothing is allocated): what a card must not claim more of than its file holds."""
    total = 0
    for part in parts:
        int8 = {f"{n}.weight" for n, m in part.named_modules() if type(m) is nn.Linear} if storage == "int8" else set()
        for key, tensor in part.state_dict().items():
            size = 1 if key in int8 else (2 if storage == "float16" and tensor.is_floating_point() else tensor.element_size())
            total += tensor.numel() * size
    return total


def footprint(model: nn.Module) -> tuple[int, int]:
    """``(parameters, bytes)`` the model holds in memory: every parameter and buffer at its
    precision, and each quantised linear layer's weights at one byte per value plus, per output
    channel, its float64 scale and int64 zero point (and its float32 bias)."""
    count = sum(p.numel() for p in model.parameters())
    size = sum(t.numel() * t.element_size() for t in itertools.chain(model.parameters(), model.buffers()))
    for layer in _quantized_linears(model).values():
        weight, bias = layer.weight(), layer.bias()
        count += weight.numel() + (bias.numel() if bias is not None else 0)
        size += weight.numel() * weight.element_size() + 16 * weight.shape[0]
        size += bias.numel() * bias.element_size() if bias is not None else 0
    return count, size
