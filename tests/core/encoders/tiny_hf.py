"""Tiny random Hugging Face models saved to disk (BERT, ViT, CLIP vision, wav2vec2, Whisper),
for tests of the ``hf:`` encoders and of gradients through them."""

from __future__ import annotations

from pathlib import Path

import torch

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}


def save_tiny_models(root: Path) -> dict[str, Path]:
    """Model name -> folder under ``root`` holding its weights and processor."""
    import transformers as tf

    torch.manual_seed(0)
    dirs = {name: root / name for name in ("bert", "vit", "clip", "wav2vec2", "whisper")}

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "sits", "on", "the", "mat", "##s", ","]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tf.BertTokenizer(vocab_file=str(root / "vocab.txt")).save_pretrained(dirs["bert"])
    tf.BertModel(tf.BertConfig(vocab_size=len(vocab), max_position_embeddings=64, **TINY)).save_pretrained(dirs["bert"])

    tf.ViTModel(tf.ViTConfig(image_size=32, patch_size=8, **TINY)).save_pretrained(dirs["vit"])
    tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(dirs["vit"])

    tf.CLIPVisionModel(tf.CLIPVisionConfig(image_size=32, patch_size=8, **TINY)).save_pretrained(dirs["clip"])
    tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        dirs["clip"]
    )

    wav2vec2 = tf.Wav2Vec2Config(
        conv_dim=(16, 16),
        conv_kernel=(10, 4),
        conv_stride=(5, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        **TINY,
    )
    tf.Wav2Vec2Model(wav2vec2).save_pretrained(dirs["wav2vec2"])
    tf.Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(dirs["wav2vec2"])

    whisper = tf.WhisperConfig(
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        vocab_size=64,
        max_target_positions=16,
        num_mel_bins=80,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    tf.WhisperModel(whisper).save_pretrained(dirs["whisper"])
    tf.WhisperFeatureExtractor(feature_size=80).save_pretrained(dirs["whisper"])
    return dirs
