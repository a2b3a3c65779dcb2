"""The Streamlit dashboard: entry and navigation (``app``), sidebar pickers and session
state (``sidebar``, ``state``), cached loaders (``loaders``), per-modality renderers
(``renderers``) and background explanation jobs (``jobs``). Pages live in ``pages/``.

Nothing here computes a metric or an attribution: that is :mod:`core`'s job.
"""
