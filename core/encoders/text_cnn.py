"""A word-level text CNN trained from scratch, with its vocabulary stored in the spec."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from core.encoders.base import Encoder, state_fingerprint

PAD = "<pad>"
UNK = "<unk>"
_WORD = re.compile(r"[^\W_]+")  # runs of Unicode letters/digits: words and numbers


def tokenize(text: str) -> list[str]:
    """Lowercased words and numbers of ``text``; punctuation and underscores separate them.

    >>> tokenize("Hello, World! 42 cats")
    ['hello', 'world', '42', 'cats']
    """
    return _WORD.findall(text.lower())


class BuiltinTextEncoder(Encoder):
    """Embedding + 1D convolutions of widths 2 and 3 + masked max-pool + linear.

    Args:
        vocab: token list; index 0 must be ``<pad>`` and index 1 ``<unk>``.
        max_tokens: texts are truncated/padded to this many tokens.
        embed_dim: word embedding size.
        conv_channels: output channels of each convolution.
        out_dim: embedding size.

    Inputs of ``forward``: ``LongTensor[B, max_tokens]`` token ids (0 = padding).
    Output: ``Tensor[B, out_dim]``.
    """

    modality = "text"
    trainable = True
    kernel_sizes = (2, 3)

    def __init__(
        self,
        vocab: list[str],
        max_tokens: int = 32,
        embed_dim: int = 64,
        conv_channels: int = 128,
        out_dim: int = 128,
    ):
        super().__init__()
        if len(vocab) < 2 or vocab[0] != PAD or vocab[1] != UNK:
            raise ValueError(f"The vocabulary must start with {PAD!r} and {UNK!r}.")
        self.vocab = list(vocab)
        self.index = {token: i for i, token in enumerate(self.vocab)}
        self.max_tokens = max_tokens
        self.embed_dim = embed_dim
        self.conv_channels = conv_channels
        self.out_dim = out_dim
        self.embedding = nn.Embedding(len(self.vocab), embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, conv_channels, kernel_size=k) for k in self.kernel_sizes)
        self.head = nn.Linear(conv_channels * len(self.kernel_sizes), out_dim)

    @classmethod
    def from_corpus(
        cls, texts: Iterable[str], min_count: int = 1, max_size: int = 20_000, **kwargs: Any
    ) -> BuiltinTextEncoder:
        """Build the vocabulary from training texts: the ``max_size`` most frequent words.

        Words seen fewer than ``min_count`` times map to ``<unk>``. Ties in frequency are
        broken alphabetically so the same corpus always gives the same vocabulary.
        Extra keyword arguments go to the constructor.
        """
        counts = Counter(token for text in texts for token in tokenize(text))
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *words[:max_size]], **kwargs)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "builtin",
            "vocab": self.vocab,
            "max_tokens": self.max_tokens,
            "embed_dim": self.embed_dim,
            "conv_channels": self.conv_channels,
            "out_dim": self.out_dim,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> BuiltinTextEncoder:
        return cls(
            vocab=spec["vocab"],
            max_tokens=spec["max_tokens"],
            embed_dim=spec["embed_dim"],
            conv_channels=spec["conv_channels"],
            out_dim=spec["out_dim"],
        )

    @staticmethod
    def tokenize(text: str) -> list[str]:
        """The words this encoder sees; explanations mask text by removing some of them."""
        return tokenize(text)

    def prepare(self, value: str) -> torch.Tensor:
        """Text -> ``LongTensor[max_tokens]`` of ids, 0-padded.

        A text without any word becomes a single ``<unk>`` so the max-pool has something to pool.
        """
        ids = [self.index.get(token, 1) for token in tokenize(value)][: self.max_tokens] or [1]
        return torch.tensor(ids + [0] * (self.max_tokens - len(ids)), dtype=torch.long)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.from_embeddings(self.embedding(batch), batch)

    def from_embeddings(self, embedded: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The forward from the token embeddings ``[B, T, embed_dim]`` on (``ids [B, T]`` give the
        padding mask): where gradient explanations attribute text."""
        mask = (ids != 0).unsqueeze(1)  # [B, 1, T]
        x = embedded.transpose(1, 2)  # [B, embed_dim, T]
        # Right-pad by k-1 so each conv gives one output per token position (the window
        # starting there); the token mask then also masks the conv outputs.
        pooled = [
            torch.relu(conv(nn.functional.pad(x, (0, conv.kernel_size[0] - 1))))
            .masked_fill(~mask, float("-inf"))
            .amax(dim=2)
            for conv in self.convs
        ]
        return self.head(torch.cat(pooled, dim=1))

    def cache_id(self) -> str:
        return f"builtin-text:{state_fingerprint(self, self.spec())}"
