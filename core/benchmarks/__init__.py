"""``python -m core bench [section ...] --json out.json``: measured figures, side by side in one run.

Each section is a module here exposing ``run(options) -> dict``; results record the
device, versions and batch sizes so that ratios can be compared across runs.
"""
