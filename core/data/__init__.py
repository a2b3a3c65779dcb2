"""Datasets on disk: manifests, validation, splits, tasks, and the embedded demo."""

from core.data.demo import build_demo, demo_is_built
from core.data.manifest import MANIFEST_NAMES, load_dataset, validate_dataset
from core.data.records import (
    SPLITS,
    Dataset,
    Record,
    RowIssue,
    ValidationReport,
    find_records,
    load_modality,
    load_sample,
    modality_values,
    natural_sort_key,
    record_to_sample,
)

__all__ = [
    "MANIFEST_NAMES",
    "SPLITS",
    "Dataset",
    "Record",
    "RowIssue",
    "ValidationReport",
    "build_demo",
    "demo_is_built",
    "find_records",
    "load_dataset",
    "load_modality",
    "load_sample",
    "modality_values",
    "natural_sort_key",
    "record_to_sample",
    "validate_dataset",
]
