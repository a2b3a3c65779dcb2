"""Lower precision: int8 dynamic quantisation and float16 storage. Neither trains."""

from __future__ import annotations

import torch

from core.compress.base import CompressionJob, Compressor, copy_model
from core.compress.storage import quantize_int8
from core.model import MultimodalClassifier


class Int8(Compressor):
    """Dynamic quantisation (:func:`torch.ao.quantization.quantize_dynamic`) of every linear layer
    of the built-in encoders, the fusion and the head: per-output-channel symmetric int8 weights,
    activations quantised on the fly at each call. Convolutions, normalisations, embeddings and
    attention's packed input projection stay float32 (no dynamic int8 kernel covers them), and so
    do frozen pretrained encoders. None of the stored modules is recurrent. CPU only."""

    name = "int8"
    storage = "int8"

    def compress(self, job: CompressionJob) -> MultimodalClassifier:
        job.emit(event="stage", stage="quantising the linear layers to int8")
        return quantize_int8(copy_model(job.parent.model).cpu()).eval()


class Float16(Compressor):
    """Every stored floating tensor rounded to float16: half the bytes on disk. Loading widens
    them back to float32 (half-precision CPU kernels are slow), so memory and speed are the
    parent's; what changes is the rounding, which the card's metrics measure."""

    name = "fp16"
    storage = "float16"

    def compress(self, job: CompressionJob) -> MultimodalClassifier:
        job.emit(event="stage", stage="rounding the weights to float16")
        model = copy_model(job.parent.model)
        trained = {m for m, e in model.encoders.items() if e.trainable}
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                frozen = name.startswith("encoders.") and name.split(".")[1] not in trained
                if tensor.is_floating_point() and not frozen:
                    tensor.copy_(tensor.half().float())
        return model.eval()
