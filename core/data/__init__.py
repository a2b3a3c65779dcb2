"""Datasets on disk: manifests, validation, splits, and the embedded demo."""

from core.data.demo import build_demo, demo_is_built
from core.data.manifest import (
    Dataset,
    Record,
    RowIssue,
    ValidationReport,
    load_dataset,
    load_modality,
    load_sample,
    natural_sort_key,
    record_to_sample,
    validate_dataset,
)

__all__ = [
    "Dataset",
    "Record",
    "RowIssue",
    "ValidationReport",
    "build_demo",
    "demo_is_built",
    "load_dataset",
    "load_modality",
    "load_sample",
    "natural_sort_key",
    "record_to_sample",
    "validate_dataset",
]
