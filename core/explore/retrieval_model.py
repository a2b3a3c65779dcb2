"""The cross-modal retrieval model and its checkpoint: contrastive projections between pairs of modalities.

For each pair of modalities ``(a, b)`` a small head maps each side's frozen encoder embedding
into a shared ``dim``-dimensional space where cosine similarity ranks matches (CLIP's recipe:
symmetric InfoNCE with a learned temperature, :mod:`core.explore.retrieval`). The encoders are
those of a *source* fusion checkpoint; the retrieval model stores only its heads.

A retrieval checkpoint is a folder with ``retrieval.safetensors`` and ``card.json`` (format
``fusion-retrieval``), written atomically like fusion checkpoints. Loading validates the card
before touching the weights, checks the weights' SHA-256 and every tensor's name, shape and
dtype against the architecture the card describes, and never unpickles.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.card import (
    DatasetInfo,
    WeightsInfo,
    build_card,
    check_card_header,
    check_weights_and_sections,
    read_card_json,
)
from core.checkpoints import load_matching_state, now_iso, verified_weights, versions, write_weights_and_card
from core.errors import CheckpointError
from core.sample import MODALITIES
from core.serialization import JsonMixin
from core.settings import settings

RETRIEVAL_FORMAT = "fusion-retrieval"
RETRIEVAL_VERSION = 1
RETRIEVAL_WEIGHTS = "retrieval.safetensors"
MAX_DIM = 4096
"""Largest embedding or projection width a card may declare (refused before anything is allocated)."""


def pair_key(a: str, b: str) -> str:
    """The name of a modality pair, its modalities sorted: ``audio-image``."""
    first, second = sorted((a, b))
    return f"{first}-{second}"


def all_pairs(modalities: list[str]) -> list[tuple[str, str]]:
    return list(itertools.combinations(sorted(modalities), 2))


class RetrievalModel(nn.Module):
    """One projection head per side of each modality pair, and one learned temperature per pair.

    Args:
        in_dims: each modality's encoder embedding size.
        pairs: the modality pairs, e.g. ``[("audio", "image")]``.
        dim: width of the shared space.
        hidden: width of each head's hidden layer.
        temperature: initial softmax temperature (CLIP's 0.07).

    Inputs (:meth:`project`): ``Tensor[B, in_dims[m]]`` embeddings of modality ``m``.
    Returns: ``Tensor[B, dim]`` unit vectors in the pair's shared space.
    """

    def __init__(self, in_dims: dict[str, int], pairs: list[tuple[str, str]], dim: int = 64, hidden: int = 256, temperature: float = 0.07):
        super().__init__()
        self.in_dims, self.dim, self.hidden = dict(in_dims), dim, hidden
        self.pairs = [tuple(sorted(p)) for p in pairs]
        self.heads = nn.ModuleDict(
            {
                pair_key(*pair): nn.ModuleDict({m: self._head(in_dims[m]) for m in pair})
                for pair in self.pairs
            }
        )
        self.log_scale = nn.ParameterDict(
            {pair_key(*pair): nn.Parameter(torch.tensor(math.log(1 / temperature))) for pair in self.pairs}
        )

    def _head(self, in_dim: int) -> nn.Module:
        return nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, self.hidden), nn.GELU(), nn.Linear(self.hidden, self.dim))

    def project(self, pair: str, modality: str, embeddings: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.heads[pair][modality](embeddings), dim=-1)

    def scale(self, pair: str) -> torch.Tensor:
        """The pair's logit scale (1 / temperature), capped at 100 as in CLIP."""
        return self.log_scale[pair].clamp(max=math.log(100)).exp()


@dataclass
class SourceInfo(JsonMixin):
    """The checkpoint whose frozen encoders make the embeddings the heads read.

    Attributes:
        encoders: modality -> the encoder's cache id (weights and preprocessing); a checkpoint whose
            encoders have the same ids can stand in for the source.
    """

    name: str = ""
    path: str = ""
    sha256: str = ""
    encoders: dict[str, str] = field(default_factory=dict)


@dataclass
class RetrievalCard(JsonMixin):
    """What a retrieval checkpoint's ``card.json`` records; ``report`` is the test-split
    :class:`core.explore.retrieval_metrics.RetrievalReport` as JSON."""

    name: str
    modalities: list[str]
    pairs: list[list[str]]
    in_dims: dict[str, int]
    dim: int
    hidden: int
    weights: WeightsInfo
    source: SourceInfo = field(default_factory=SourceInfo)
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    config: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    format: str = RETRIEVAL_FORMAT
    format_version: int = RETRIEVAL_VERSION

    @property
    def sha256(self) -> str:
        return self.weights.sha256

    @classmethod
    def parse(cls, data: Any, where: str) -> RetrievalCard:
        _validate(data, where)
        return build_card(cls, data, f"Retrieval checkpoint {where}")


def _validate(card: Any, where: str) -> None:
    fail = check_card_header(card, f"Retrieval checkpoint {where}", RETRIEVAL_FORMAT, RETRIEVAL_VERSION)
    in_dims = card.get("in_dims")
    if not (isinstance(in_dims, dict) and in_dims and set(in_dims) <= set(MODALITIES)):
        fail(f"'in_dims' must map modalities ({', '.join(MODALITIES)}) to embedding sizes.")
    sizes = [*in_dims.values(), card.get("dim"), card.get("hidden")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_DIM for n in sizes):
        fail(f"'in_dims', 'dim' and 'hidden' must be whole numbers from 1 to {MAX_DIM}.")
    if card.get("modalities") != sorted(in_dims):
        fail("'modalities' does not match 'in_dims'.")
    pairs = card.get("pairs")
    if not (
        isinstance(pairs, list)
        and pairs
        and all(isinstance(p, list) and len(p) == 2 and p == sorted(set(p)) and set(p) <= set(in_dims) for p in pairs)
    ):
        fail("'pairs' must list pairs of two different modalities of 'in_dims', each sorted.")
    check_weights_and_sections(card, fail, RETRIEVAL_WEIGHTS, ("source", "dataset", "config", "training", "report", "versions"))


def build_retrieval_model(card: RetrievalCard) -> RetrievalModel:
    return RetrievalModel(card.in_dims, [tuple(p) for p in card.pairs], card.dim, card.hidden)


@dataclass
class LoadedRetrieval:
    """A retrieval checkpoint in memory: the eval-mode model, its card, its folder and its name
    (the card's, else the folder's)."""

    model: RetrievalModel
    card: RetrievalCard
    path: Path
    name: str


def _state(model: RetrievalModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_retrieval(model: RetrievalModel, path: str | Path, *, name: str, source: SourceInfo, dataset: DatasetInfo, config: dict, training: dict, report: dict) -> Path:
    """Write a retrieval checkpoint folder atomically; returns its path."""
    state = _state(model)

    def card(sha256: str) -> RetrievalCard:
        return RetrievalCard(
            name=name,
            modalities=sorted(model.in_dims),
            pairs=[list(p) for p in model.pairs],
            in_dims=model.in_dims,
            dim=model.dim,
            hidden=model.hidden,
            weights=WeightsInfo(file=RETRIEVAL_WEIGHTS, sha256=sha256, tensors={k: list(v.shape) for k, v in state.items()}),
            source=source,
            dataset=dataset,
            config=config,
            training=training,
            report=report,
            versions=versions(),
            created_at=now_iso(),
        )

    return write_weights_and_card(path, state, RETRIEVAL_WEIGHTS, {"format": RETRIEVAL_FORMAT}, card)


def read_retrieval_card(path: str | Path) -> RetrievalCard:
    """Read and validate a retrieval checkpoint's card without touching its weights."""
    path = Path(path)
    return RetrievalCard.parse(read_card_json(path), path.name)


def load_retrieval(path: str | Path) -> LoadedRetrieval:
    """Load a retrieval checkpoint folder into an eval-mode model (CPU, gradients off).

    Raises:
        CheckpointError: a card that does not validate, weights modified after saving, or tensors
            that do not match the architecture the card describes.
    """
    path = Path(path)
    card = read_retrieval_card(path)
    weights_path = verified_weights(path, RETRIEVAL_WEIGHTS, card.sha256)
    model = build_retrieval_model(card)
    where = f"Retrieval checkpoint {path.name}"
    model.load_state_dict(load_matching_state(weights_path, _state(model), where, "retrieval"))
    model.eval().requires_grad_(False)
    return LoadedRetrieval(model, card, path, card.name or path.name)


def list_retrieval(root: str | Path | None = None) -> list[tuple[Path, RetrievalCard | None, str | None]]:
    """``(folder, card, error)`` of every retrieval checkpoint under ``root`` (default: ``FUSION_RETRIEVAL``)."""
    root = Path(root) if root is not None else settings().retrieval_dir
    if not root.is_dir():
        return []
    found: list[tuple[Path, RetrievalCard | None, str | None]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            found.append((folder, read_retrieval_card(folder), None))
        except CheckpointError as err:
            found.append((folder, None, str(err)))
    return found
