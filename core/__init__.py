"""Multimodal fusion engine: datasets, encoders, fusion strategies, training, evaluation, explanations.

Knows nothing of the dashboard; ``python -m core`` exposes every batch job. Importing it
changes nothing in the process: entry points call :func:`core.settings.configure_process`.
"""

__version__ = "0.1.0"
