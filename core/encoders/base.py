"""The interface every modality encoder implements."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from torch import nn


class Encoder(nn.Module):
    """Maps one modality's decoded input to a fixed-size embedding.

    Attributes:
        modality: ``"image"``, ``"text"`` or ``"audio"``.
        out_dim: embedding size.
        trainable: ``True`` for encoders trained from scratch (weights go into the
            checkpoint); ``False`` for frozen pretrained ones (weights are loaded from
            their package or directory, embeddings are cached on disk).

    Inputs of ``forward``: whatever ``collate`` returns for a batch of B samples.
    Output of ``forward``: ``Tensor[B, out_dim]``.
    """

    modality: str
    out_dim: int
    trainable: bool = True

    def spec(self) -> dict[str, Any]:
        """JSON-serialisable description from which ``build_encoder`` rebuilds this encoder."""
        raise NotImplementedError

    def prepare(self, value: Any) -> Any:
        """CPU preprocessing of one decoded value (image array, text, waveform) into model input."""
        raise NotImplementedError

    def collate(self, items: list[Any]) -> Any:
        """Stack prepared items into one batch input for ``forward``."""
        return torch.stack(items)

    def prepares_on(self, device: torch.device) -> bool:
        """Whether :meth:`prepare_batch` does its work on ``device`` (a GPU), not item by item on the CPU."""
        return False

    def prepare_batch(self, values: list[Any], device: torch.device) -> Any:
        """The batch input for ``forward`` of decoded ``values``: each prepared on the CPU, then
        collated (an encoder whose preprocessing is cheaper on a GPU overrides this)."""
        return self.collate([self.prepare(value) for value in values])

    def cache_id(self) -> str:
        """Identifies weights + preprocessing: the key prefix of the on-disk embedding cache."""
        raise NotImplementedError


class FrozenEncoder(Encoder):
    """A pretrained encoder whose weights never change.

    It stays in eval mode even when the surrounding model calls ``train()`` (dropout
    or batch-norm updates in a frozen network would make its cached embeddings
    wrong), and its parameters never require gradients. Subclasses call
    :meth:`freeze` once their weights are loaded.
    """

    trainable = False

    def freeze(self) -> None:
        """Put every submodule in eval mode and stop gradients to every parameter."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        # Ignore ``mode``: a frozen encoder behaves identically during training and inference.
        return super().train(False)


def state_fingerprint(module: nn.Module, spec: dict[str, Any]) -> str:
    """Short hash of a module's architecture spec and current weights.

    Trainable encoders use it as their ``cache_id``: it changes whenever a
    training step changes a weight, so stale cached embeddings are never reused.
    """
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for name, value in sorted(module.state_dict().items()):
        digest.update(name.encode())
        _hash_state_value(digest, value)
    return digest.hexdigest()[:16]


_PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_symmetric)


def _hash_state_value(digest: Any, value: Any) -> None:
    """Feed one state-dict entry to ``digest``: a tensor's raw bytes, a quantised tensor's integers
    and scales, the items of the tuple a quantised layer stores, or the text of anything else."""
    if isinstance(value, (tuple, list)):
        for item in value:
            _hash_state_value(digest, item)
    elif isinstance(value, torch.Tensor) and value.is_quantized:
        _hash_state_value(digest, value.int_repr())
        _hash_state_value(digest, value.q_per_channel_scales() if value.qscheme() in _PER_CHANNEL else torch.tensor(value.q_scale()))
    elif isinstance(value, torch.Tensor):
        # Raw bytes through a uint8 view so any dtype (bf16 included) hashes the same way.
        digest.update(value.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        digest.update(repr(value).encode())

