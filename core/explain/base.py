"""The one interface every explanation method implements.

An explainer receives the :class:`~core.explain.engine.PerturbationEngine` of one sample
(the model, the sample encoded once, its segmentations, its probabilities), the class to
explain and the modalities to explain, and returns one :class:`~core.explain.result.Explanation`.
Methods are found through :data:`core.explain.registry.EXPLAINERS`: adding one is one new
module and one registry line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from core.explain.params import ExplainParams
from core.explain.result import Explanation

if TYPE_CHECKING:
    from core.explain.engine import PerturbationEngine


class Explainer(ABC):
    """An explanation method.

    Attributes:
        name: the registry key, CLI ``--method`` value and ``Explanation.method``.
        label: how the dashboard names it.
        segment_scores: whether its results score segments (superpixels, tokens, audio
            blocks), so faithfulness curves and agreement apply to them.
        needs_modalities: whether it needs at least one explained modality present.
        seeded: whether its result depends on ``ExplainParams.seed`` (random sampling), so
            its variation across seeds is worth measuring.

    ``explain`` raises :class:`~core.errors.MethodNotApplicableError` when the method does not
    apply to the model or sample; :func:`core.explain.explain` turns that into a result that
    says why (``metadata["not_applicable"]``) instead of failing.
    """

    name: str = ""
    label: str = ""
    segment_scores: bool = True
    needs_modalities: bool = True
    seeded: bool = False

    def cost(self, params: ExplainParams, n_modalities: int) -> float:
        """Rough relative cost (model evaluations), to share one progress bar between methods."""
        return 1.0

    @abstractmethod
    def explain(self, engine: PerturbationEngine, target: int, modalities: list[str]) -> Explanation:
        """Attributions of ``engine``'s sample for class index ``target`` over ``modalities``."""
