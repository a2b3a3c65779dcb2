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

from core.compress.base import CompressOptions, Compressor
from core.compress.registry import COMPRESSORS
from core.compress.run import CompressResult, compress_checkpoint, default_name, parse_method

__all__ = [
    "COMPRESSORS",
    "CompressOptions",
    "CompressResult",
    "Compressor",
    "compress_checkpoint",
    "default_name",
    "parse_method",
]
