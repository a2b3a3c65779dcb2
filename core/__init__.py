"""Multimodal fusion engine: datasets, encoders, fusion strategies, training, evaluation, explanations.

Knows nothing of the dashboard; ``python -m core`` exposes every batch job.
"""

import os

# Before torch is imported: libgomp's default busy-waiting makes every op ~15x slower as soon
# as another process (the dashboard server, a training run, a browser) wants the same cores
# (measured on 2 cores: 7.2 s vs 1.2 s for the same 5 CNN training steps).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# numpy's OpenBLAS only ever sees small matrices here (spectrograms, metrics, LIME's ridge
# fits), where its threaded path is slower, and ~1000x slower when the other cores are
# busy (measured: a 40x257 @ 257x101 product took 22 ms instead of 0.03 ms). torch keeps
# its own thread pool, so this does not touch model speed. The variable covers BLAS
# libraries loaded from now on; threadpool_limits covers those a host (Streamlit, a
# notebook) loaded before us.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy  # noqa: E402,F401  (loads its OpenBLAS so the limit below applies to it)
from threadpoolctl import threadpool_limits  # noqa: E402

__version__ = "0.1.0"

threadpool_limits(1, user_api="blas")
