"""Any frozen Hugging Face model, by hub name or local directory, as an image, text or audio encoder."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.encoders.base import FrozenEncoder
from core.errors import EncoderLoadError
from core.io import SAMPLE_RATE
from core.settings import settings

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the hub (then only local files and the local cache are used)."""
    return settings().hf_offline


def local_weights_signature(path: Path) -> str:
    """Names, sizes and mtimes of a local model directory's weight files.

    Cheaper than hashing gigabytes of weights, and it changes whenever a file is replaced.
    """
    entries = sorted(
        f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
        for p in path.rglob("*")
        if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)
    )
    return "|".join(entries)


def _pad_last_dim(tensors: list[torch.Tensor], value: float) -> torch.Tensor:
    """Stack tensors that differ only in their last dimension, right-padding with ``value``."""
    length = max(t.shape[-1] for t in tensors)
    return torch.stack([torch.nn.functional.pad(t, (0, length - t.shape[-1]), value=value) for t in tensors])


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden[B, T, H]`` over the positions where ``mask[B, T]`` is nonzero."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class HuggingFaceEncoder(FrozenEncoder):
    """A frozen ``transformers`` model (hub name or local directory) pooled to one vector.

    Pooling by modality:

    - image: ``get_image_features`` where the model has it (CLIP-like: the projected image
      embedding); otherwise its pooler output when the checkpoint has pooler weights
      (CLIP vision tower, CNNs), else the first (CLS) token of ``last_hidden_state`` (ViT).
    - text: ``get_text_features`` where the model has it (CLIP-like); otherwise the mean of
      ``last_hidden_state`` over the attention mask (BERT-like).
    - audio: encoder-decoder models (Whisper) use their encoder only; the pooler output where
      there is one (AST), else the mean of ``last_hidden_state`` over the frames that hold
      audio (wav2vec2, HuBERT, Whisper: its 30 s padding is left out of the mean).

    Args:
        name: hub id (``"openai/clip-vit-base-patch32"``) or path to a local model directory.
        modality: ``"image"``, ``"text"`` or ``"audio"``.
        max_length: longest tokenised text (text only); capped by the model's positions.
        normalize: L2-normalise the output (sentence-embedding models are used this way).

    Inputs of ``forward``: the dict of padded tensors ``collate`` returns.
    Output: ``Tensor[B, out_dim]``, ``out_dim`` measured once on a probe input.
    """

    kind = "hf"

    def __init__(self, name: str, modality: str, *, max_length: int = 128, normalize: bool = False):
        super().__init__()
        if modality not in ("image", "text", "audio"):
            raise EncoderLoadError(f"Unknown modality {modality!r} for Hugging Face model {name!r}.")
        self.name = str(name)
        self.modality = modality
        self.normalize = normalize
        self._local_dir = Path(self.name).expanduser() if Path(self.name).expanduser().is_dir() else None
        self.model, self.processor, self.config = self._load()
        self.max_length = max_length
        if modality == "text":
            positions = getattr(self.config, "max_position_embeddings", None)
            if positions:
                # RoBERTa-like models reserve position ids for padding; stay clear of the edge.
                self.max_length = min(max_length, int(positions) - 2 if positions > 2 else int(positions))
        self.freeze()
        with torch.inference_mode():
            self.out_dim = int(self(self.collate([self.prepare(self._probe_value())])).shape[1])

    def _load(self) -> tuple[torch.nn.Module, Any, Any]:
        try:
            import transformers
        except ImportError:  # pragma: no cover - transformers is a hard dependency
            raise EncoderLoadError("The 'transformers' package is required for Hugging Face encoders.") from None
        source = str(self._local_dir) if self._local_dir else self.name
        offline = self._local_dir is not None or hub_offline()
        processor_class = {
            "image": transformers.AutoImageProcessor,
            "text": transformers.AutoTokenizer,
            "audio": transformers.AutoFeatureExtractor,
        }[self.modality]
        try:
            config = transformers.AutoConfig.from_pretrained(source, local_files_only=offline)
            model, info = transformers.AutoModel.from_pretrained(
                source, local_files_only=offline, output_loading_info=True
            )
            processor = processor_class.from_pretrained(source, local_files_only=offline)
        except (OSError, ValueError, KeyError) as err:
            where = (
                f"the directory {source}"
                if self._local_dir
                else "the local Hugging Face cache (offline mode: HF_HUB_OFFLINE is set)"
                if offline
                else "the Hugging Face hub"
            )
            raise EncoderLoadError(
                f"Could not load the {self.modality} model {self.name!r} from {where}: {err}. "
                "Give a local directory holding config.json, the weights and the "
                f"{processor_class.__name__.removeprefix('Auto')} files, or download the model first."
            ) from None
        # A pooler missing from the checkpoint is randomly initialised: its output would be noise.
        self._missing_pooler = any(key.startswith("pooler") for key in info.get("missing_keys", []))
        if getattr(config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            model = model.get_encoder()
        return model, processor, config

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.kind, "name": self.name, "modality": self.modality}
        if self.modality == "text":
            spec["max_length"] = self.max_length
        if self.normalize:
            spec["normalize"] = True
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> HuggingFaceEncoder:
        return cls(
            spec["name"],
            spec["modality"],
            max_length=spec.get("max_length", 128),
            normalize=spec.get("normalize", False),
        )

    def cache_id(self) -> str:
        digest = hashlib.sha256(self.config.to_json_string(use_diff=False).encode())
        digest.update(repr(sorted(self.spec().items())).encode())
        if self.modality == "text":
            digest.update(f"{type(self.processor).__name__}:{len(self.processor)}".encode())
        else:
            digest.update(self.processor.to_json_string().encode())
        if self._local_dir:
            digest.update(local_weights_signature(self._local_dir).encode())
        else:
            # The hub snapshot the files came from; a new upload gets a new commit hash.
            digest.update(str(getattr(self.config, "_commit_hash", "")).encode())
        spec = self.spec()
        label = spec.get("name") or spec.get("path") or "packaged"
        return f"{self.kind}:{label}:{digest.hexdigest()[:16]}"

    def _probe_value(self) -> Any:
        if self.modality == "image":
            return np.full((32, 32, 3), 128, dtype=np.uint8)
        if self.modality == "text":
            return "hello world"
        return np.zeros(SAMPLE_RATE, dtype=np.float32)

    def tokenize(self, text: str) -> list[str]:
        """Words as the tokenizer splits them before sub-word tokenisation.

        Explanations drop some of these and join the rest with spaces, which the
        tokenizer reads back to the same units. Falls back to whitespace splitting
        for tokenizers without a pre-tokenizer.
        """
        backend = getattr(self.processor, "backend_tokenizer", None)
        pre_tokenizer = getattr(backend, "pre_tokenizer", None) if backend is not None else None
        if pre_tokenizer is None:
            return text.split()
        return [word for word, _ in pre_tokenizer.pre_tokenize_str(text)]

    def prepare(self, value: Any) -> dict[str, torch.Tensor]:
        """One decoded value -> dict of unbatched tensors.

        Image: ``pixel_values[C, H, W]``. Text: ``input_ids[L]``, ``attention_mask[L]``
        (and ``token_type_ids[L]`` for BERT-like models). Audio: the feature extractor's
        input (``input_values[T]`` raw samples, or ``input_features[F, T]``) and
        ``attention_mask[T]``.
        """
        if self.modality == "image":
            from PIL import Image

            image = Image.fromarray(np.asarray(value, dtype=np.uint8)).convert("RGB")
            pixels = self.processor(images=image, return_tensors="pt")["pixel_values"]
            return {"pixel_values": pixels[0]}
        if self.modality == "text":
            encoded = self.processor(value, truncation=True, max_length=self.max_length)
            return {key: torch.tensor(ids, dtype=torch.long) for key, ids in encoded.items()}
        features = self.processor(
            np.asarray(value, dtype=np.float32),
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            return_attention_mask=True,
        )
        input_name = self.processor.model_input_names[0]
        prepared = {input_name: features[input_name][0]}
        mask = features.get("attention_mask")
        frames = prepared[input_name].shape[-1]
        prepared["attention_mask"] = mask[0].long() if mask is not None else torch.ones(frames, dtype=torch.long)
        return prepared

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Stack prepared dicts, right-padding variable lengths (masks and token ids with 0/pad id)."""
        batch = {}
        for key in items[0]:
            pad_value = 0.0
            if key == "input_ids":
                pad_value = float(getattr(self.processor, "pad_token_id", None) or 0)
            batch[key] = _pad_last_dim([item[key] for item in items], pad_value)
        return batch

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.modality == "image":
            pooled = self._image_forward(batch["pixel_values"])
        elif self.modality == "text":
            pooled = self._text_forward(batch)
        else:
            pooled = self._audio_forward(batch)
        pooled = pooled.float()
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def _image_forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixel_values = pixel_values.to(self.model.dtype)
        if hasattr(self.model, "get_image_features"):
            features = self.model.get_image_features(pixel_values=pixel_values)
            return features if isinstance(features, torch.Tensor) else features.pooler_output
        outputs = self.model(pixel_values=pixel_values)
        pooler = getattr(outputs, "pooler_output", None)
        if pooler is not None and not self._missing_pooler:
            return pooler.flatten(1)
        hidden = outputs.last_hidden_state
        return hidden[:, 0] if hidden.dim() == 3 else hidden.flatten(2).mean(dim=2)

    def _text_forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if hasattr(self.model, "get_text_features"):
            features = self.model.get_text_features(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            )
            return features if isinstance(features, torch.Tensor) else features.pooler_output
        outputs = self.model(**batch)
        return _masked_mean(outputs.last_hidden_state, batch["attention_mask"])

    def _audio_forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        input_name = self.processor.model_input_names[0]
        inputs = batch[input_name].to(self.model.dtype)
        mask = batch["attention_mask"]
        if input_name == "input_values" and inputs.dim() == 2 and not self.processor.return_attention_mask:
            # Raw-waveform models trained without an attention mask (wav2vec2-base and its
            # group-norm feature encoder) see padding as signal, so equal-length clips are
            # run together and different lengths separately: a clip's embedding never
            # depends on what it was batched with.
            lengths = mask.sum(dim=1)
            out: list[torch.Tensor | None] = [None] * len(lengths)
            for length in torch.unique(lengths).tolist():
                rows = (lengths == length).nonzero().flatten()
                pooled = self._pool_audio(inputs[rows, :length], None)
                for row, vector in zip(rows.tolist(), pooled, strict=True):
                    out[row] = vector
            return torch.stack([vector for vector in out if vector is not None])
        return self._pool_audio(inputs, mask)

    def _pool_audio(self, inputs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        input_name = self.processor.model_input_names[0]
        pass_mask = mask is not None and input_name == "input_values" and self.processor.return_attention_mask
        kwargs = {"attention_mask": mask} if pass_mask else {}
        outputs = self.model(**{input_name: inputs}, **kwargs)
        pooler = getattr(outputs, "pooler_output", None)
        if pooler is not None and not self._missing_pooler:
            return pooler.flatten(1)
        hidden = outputs.last_hidden_state
        if mask is None:
            return hidden.mean(dim=1)
        valid = mask.sum(dim=1)
        if hasattr(self.model, "_get_feat_extract_output_lengths"):
            out_lengths = self.model._get_feat_extract_output_lengths(valid)
        else:
            # Whisper-like encoders downsample their input frames by a fixed factor.
            out_lengths = torch.ceil(valid * hidden.shape[1] / mask.shape[1])
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        frame_mask = positions.unsqueeze(0) < out_lengths.clamp(min=1).unsqueeze(1)
        return _masked_mean(hidden, frame_mask)
