"""Smaller checkpoints from trained ones: int8 quantisation, float16, pruning, distillation.

``compress_checkpoint(parent, "int8", out)`` writes an ordinary checkpoint (safetensors + card)
whose card names its parent (name and weights hash), the method and its parameters; the same
record is sealed in the weights file, so a card edited afterwards is refused at load. The CLI's
``compress`` and the dashboard's Train page both call it.

=============  ============================================================
module         what it holds
=============  ============================================================
``base``       :class:`Compressor`, :class:`CompressOptions`, the job and its fine-tune
``quantize``   ``int8`` (dynamic quantisation) and ``fp16``
``prune``      ``prune:<fraction>``: magnitude pruning, then a fine-tune
``distill``    ``distill``: a smaller student trained on the teacher's soft outputs
``registry``   :data:`COMPRESSORS`, one line per method
``storage``    how compressed weights are stored and loaded back
``run``        :func:`compress_checkpoint`: parent in, scored checkpoint out
``runs``       compressions in the background, beside training runs
=============  ============================================================
"""

from typing import TYPE_CHECKING

from core.lazy import lazy_exports

COMPRESSION_METHODS = {
    "int8": "dynamic int8 quantisation of the linear layers (CPU inference)",
    "fp16": "float16 weights on disk (half the size; widened to float32 at load)",
    "prune": "zero the smallest weights of the fusion and head, then fine-tune",
    "distill": "train a smaller fusion head on the teacher's softened probabilities",
}
"""Method name -> one line for ``--help`` and the Train page, in the order they are offered; known
without importing torch (the command line's help). :mod:`core.compress.registry` checks it."""

if TYPE_CHECKING:
    from core.compress.base import CompressOptions, Compressor
    from core.compress.registry import COMPRESSORS
    from core.compress.run import CompressResult, compress_checkpoint, default_name, parse_method

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "base": ["CompressOptions", "Compressor"],
        "registry": ["COMPRESSORS"],
        "run": ["CompressResult", "compress_checkpoint", "default_name", "parse_method"],
    },
)
__all__ = [
    "COMPRESSION_METHODS",
    "COMPRESSORS",
    "CompressOptions",
    "CompressResult",
    "Compressor",
    "compress_checkpoint",
    "default_name",
    "parse_method",
]
