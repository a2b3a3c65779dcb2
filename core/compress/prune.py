"""Magnitude pruning of the fusion and head, then a short fine-tune on cached embeddings."""

from __future__ import annotations

from typing import Any

from torch.nn.utils import prune

from core.compress.base import CompressionJob, CompressOptions, Compressor, copy_model, weight_tensors
from core.errors import CompressionError
from core.model import MultimodalClassifier
from core.train.loss import MultiTaskLoss

DEFAULT_EPOCHS = 10
DEFAULT_LR = 5e-4


class Prune(Compressor):
    """``prune:<fraction>``: the given fraction of the fusion's and head's weight-matrix entries
    with the smallest magnitude, over all of them at once (:func:`torch.nn.utils.prune.global_unstructured`
    with L1), set to zero; then the rest are fine-tuned with the zeros held by the pruning masks,
    and the masks are made permanent. The encoders are kept whole: the fine-tune runs on their
    cached embeddings. Zeros are stored densely, so the file is as large as the parent's and dense
    CPU kernels run no faster: pruning shows how many weights the model does without."""

    name = "prune"

    def parameters(self, argument: str | None, options: CompressOptions) -> dict[str, Any]:
        try:
            fraction = float(argument) if argument else 0.5
        except ValueError:
            raise CompressionError(f"prune:<fraction> needs a number between 0 and 1, got {argument!r}.") from None
        if not 0.0 < fraction < 1.0:
            raise CompressionError(f"prune:<fraction> needs a fraction strictly between 0 and 1, got {fraction}.")
        return {
            "fraction": fraction,
            "epochs": int(options.epochs if options.epochs is not None else DEFAULT_EPOCHS),
            "lr": float(options.lr if options.lr is not None else DEFAULT_LR),
            "seed": options.seed,
        }

    def compress(self, job: CompressionJob) -> MultimodalClassifier:
        params = job.parameters
        model = copy_model(job.parent.model).to(job.device)
        targets = weight_tensors(model.fusion) + weight_tensors(model.head)
        job.emit(event="stage", stage=f"pruning {params['fraction']:.0%} of {sum(getattr(m, n).numel() for m, n in targets):,} weights")
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=params["fraction"])
        if params["epochs"] > 0:
            loss = MultiTaskLoss(model.tasks, "fixed", job.parent.card.task_weights or None)
            job.fine_tune(model, loss, epochs=params["epochs"], lr=params["lr"])
        for module, name in targets:
            prune.remove(module, name)
        zeros = sum(int((getattr(m, n) == 0).sum()) for m, n in targets)
        job.parameters["zeros"] = zeros
        job.parameters["pruned_of"] = sum(getattr(m, n).numel() for m, n in targets)
        model.requires_grad_(False)
        return model.eval()
