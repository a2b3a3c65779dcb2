"""Multimodal fusion engine: datasets, encoders, fusion strategies, training, evaluation, explanations.

Knows nothing of the dashboard; ``python -m core`` exposes every batch job.
"""

__version__ = "0.1.0"
