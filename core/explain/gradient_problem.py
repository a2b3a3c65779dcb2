"""What every gradient method shares: the sample's inputs as Captum sees them, and the forward.

Integrated Gradients and GradientSHAP attribute EVERY differentiable modality of a sample
in one joint call: Captum receives a tuple with one tensor per modality, in the form its
encoder reads it (:mod:`core.explain.gradient_inputs`), and the forward function is the
class probabilities of ``model.classify`` on the encoders' outputs. Modalities held fixed
(not explained, or not differentiable) keep the engine's embedding; absent ones their
learned missing embedding, as everywhere else. The output is the engine's task (a softmax
over its block, or a sigmoid per label for a multi-label task).

Thread safety: the shared model is only called (no hook, no mode change, no parameter
written); gradients are taken with ``torch.autograd.grad`` with respect to the input
tensors only, so no ``.grad`` is ever accumulated on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from core.compress.storage import is_quantized
from core.device import memory_bounded_batch
from core.errors import MethodNotApplicableError, NotDifferentiableError
from core.explain.engine import PerturbationEngine
from core.explain.gradient_inputs import INPUT_BUILDERS, ModalityInput
from core.explain.result import Explanation
from core.explain.shap_explainer import seeded_global_rng
from core.inference import task_output
from core.sample import DecodedSample

AUTO_BATCH_ELEMENTS = 4_000_000
"""Input values per IG forward/backward pass when ``ExplainParams.gradient_batch_size`` is ``None``."""

PATH_TOLERANCE = 1e-4
"""Largest difference (relative to the embedding's scale) allowed between an attribution
path's embedding of the real input and the encoder's own forward."""


@contextmanager
def grad_mode() -> Iterator[None]:
    """Gradients on, even when the caller runs under ``torch.inference_mode`` or ``no_grad``."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


@contextmanager
def seeded_rngs(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """numpy's and torch's global RNGs seeded for the block (Captum draws from both), under
    the lock SHAP uses; the previous states are restored afterwards."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with seeded_global_rng(seed), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class GradientProblem:
    """One engine's sample and the modalities to attribute, as Captum's inputs and forward.

    Args:
        engine: the sample's perturbation engine (its segmentations, embeddings and presence).
        modalities: the modalities to attribute; the others are held at their embedding.

    Attributes:
        items: one :class:`ModalityInput` per attributed modality, in model order.
        modalities: the attributed modalities, in ``inputs`` order.
        inputs, baselines: tuples of ``[1, ...]`` tensors, one per attributed modality.
        not_differentiable: modality -> reason, for requested modalities held fixed.
        path_check: modality -> largest difference between the attribution path's embedding
            and the encoder's own forward on the real input.

    Raises:
        MethodNotApplicableError: no requested modality can be attributed by gradients.
    """

    def __init__(self, engine: PerturbationEngine, modalities: list[str]):
        self.engine = engine
        self.model = engine.model
        self.device = engine.device
        self.present = engine.present.to(self.device)
        if is_quantized(self.model):
            raise MethodNotApplicableError(
                "Gradient methods need float weights, and this checkpoint is int8-quantised (its layers have no "
                "gradients). Explain its float parent with them, or use SHAP and LIME here."
            )
        # Outside inference mode: tensors made under it could not enter an autograd graph.
        with grad_mode():
            self._build(modalities)
        if not self.items:
            reasons = "; ".join(f"{m}: {r}" for m, r in self.not_differentiable.items()) or "nothing to attribute"
            raise MethodNotApplicableError(f"No modality of this sample can be attributed by gradients ({reasons}).")

    def _build(self, modalities: list[str]) -> None:
        model, sample = self.model, self.engine.sample
        self.not_differentiable: dict[str, str] = {}
        inputs: dict[str, ModalityInput] = {}
        for m in modalities:
            try:
                inputs[m] = INPUT_BUILDERS[m](
                    model.encoders[m], sample.get(m), self.engine.segmentation(m), self.device
                )
            except NotDifferentiableError as err:
                self.not_differentiable[m] = str(err)
        self.fixed = {m: e.clone() for m, e in self.engine.base_embeddings.items()}
        self.path_check: dict[str, float] = {}
        if inputs:
            with torch.no_grad():
                # The encoders' own forward in float32 (the engine's may be autocast on CUDA).
                reference = model.embed(model.prepare([DecodedSample(**{m: sample.get(m) for m in inputs})]))
                for m, item in list(inputs.items()):
                    error = float((item.embed(item.inputs).float() - reference[m].float()).abs().max())
                    self.path_check[m] = error
                    if not error <= PATH_TOLERANCE * (1.0 + float(reference[m].abs().max())):
                        self.not_differentiable[m] = (
                            f"the gradient path's embedding differs from the encoder's by {error:.2e}"
                        )
                        del inputs[m]
        self.items = [inputs[m] for m in model.modalities if m in inputs]
        self.modalities = [item.modality for item in self.items]
        self.inputs = tuple(item.inputs for item in self.items)
        self.baselines = tuple(item.baseline for item in self.items)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """The task's probabilities ``[N, C]`` with the attributed modalities set to ``xs``."""
        rows = xs[0].shape[0] if xs else 1
        return self.probabilities({item.modality: item.embed(x) for item, x in zip(self.items, xs, strict=True)}, rows)

    def probabilities(self, replaced: dict[str, torch.Tensor], rows: int) -> torch.Tensor:
        """The explained task's probabilities ``[rows, C]`` with ``replaced`` embeddings swapped
        in and the others held fixed (differentiable)."""
        embeddings = {m: e.expand(rows, -1) for m, e in self.fixed.items()}
        embeddings.update({m: e.float() for m, e in replaced.items()})
        outputs = self.model.classify(embeddings, self.present.expand(rows, -1)).float()
        return task_output(self.model, outputs, self.engine.task, logits=False)

    def value(self, xs: tuple[torch.Tensor, ...], target: int) -> float:
        """The target probability at ``xs`` (no gradients)."""
        with grad_mode(), torch.no_grad():
            return float(self.forward(*xs)[0, target])

    def noise_scales(self, fraction: float) -> tuple[float, ...]:
        """Per attributed modality, ``fraction`` of ``std(input - baseline)`` (0 where noise is not allowed)."""
        return tuple(
            float(fraction * (item.inputs - item.baseline).float().std()) if item.noise else 0.0 for item in self.items
        )

    def internal_batch(self, n_steps: int) -> int:
        """IG rows per pass: ``gradient_batch_size``, else about ``AUTO_BATCH_ELEMENTS`` input
        values, bounded by free CUDA memory."""
        if self.engine.params.gradient_batch_size is not None:
            return self.engine.params.gradient_batch_size
        per_row = max(1, sum(x[0].numel() for x in self.inputs))
        rows = max(1, min(n_steps, AUTO_BATCH_ELEMENTS // per_row))
        return memory_bounded_batch(self.device, per_row * 4, rows, activation_factor=256)

    def explanation(
        self, method: str, target: int, attributions: tuple[torch.Tensor, ...] | dict[str, np.ndarray]
    ) -> Explanation:
        """An :class:`Explanation` from Captum's attributions (one ``[1, ...]`` tensor per
        attributed modality, or modality -> input-shaped numpy array).

        Segment scores are the attributions summed within the engine's segments (what SHAP
        and LIME score); the maps keep the gradient methods' own resolution; totals are the
        raw sums (attribution on positions no segment covers goes to ``metadata["unplaced"]``).
        """
        if not isinstance(attributions, dict):
            attributions = {
                m: a.detach()[0].double().cpu().numpy() for m, a in zip(self.modalities, attributions, strict=True)
            }
        items = {item.modality: item for item in self.items}
        placed = {m: items[m].place(a) for m, a in attributions.items()}
        result = self.engine.attribution(method, target, {m: scores for m, (_, scores) in placed.items()})
        unplaced = {}
        for m, (grid, scores) in placed.items():
            total = float(np.sum(attributions[m], dtype=np.float64))
            result.modality_totals[m] = total
            if abs(total - float(scores.sum())) > 1e-9 * max(1.0, abs(total)):
                # e.g. an empty text's single <unk>, or GradientSHAP noise on [CLS]
                unplaced[m] = total - float(scores.sum())
            if m == "image":
                result.image = grid
            elif m == "audio":
                result.audio = grid
        result.metadata.update(self.describe(attributions))
        if unplaced:
            result.metadata["unplaced"] = unplaced
        return result

    def describe(self, attributions: dict[str, Any]) -> dict[str, Any]:
        """What was attributed, against which baseline, and what was held fixed and why."""
        return {
            "inputs": {i.modality: i.describe.get("input", "") for i in self.items if i.modality in attributions},
            "baselines": {i.modality: i.describe.get("baseline", "") for i in self.items if i.modality in attributions},
            "not_differentiable": dict(self.not_differentiable),
            "path_check": dict(self.path_check),
        }
