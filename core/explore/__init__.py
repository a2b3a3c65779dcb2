"""Exploring a dataset and a checkpoint's representation space: browse, project, neighbours, retrieval.

=====================  ==========================================================
module                 what it holds
=====================  ==========================================================
``spaces``             each modality's embedding and the fused representation of a split
``browse``             a split as a table with predictions; filter, sort and page it
``index``              faiss cosine indices (exact, or HNSW above a measured size), cached on disk
``neighbors``          nearest neighbours of a sample, and neighbour label agreement
``projection``         2-D maps (UMAP, or PCA) cached on disk; placing new samples on them
``retrieval_model``    contrastive projection heads and their checkpoint (safetensors + card)
``retrieval_metrics``  Recall@K, median rank, precision@K and mAP with chance levels
``retrieval``          training (symmetric InfoNCE), scoring, searching from an upload
=====================  ==========================================================

Every function here is what both ``python -m core neighbors|project|retrieve|train-retrieval``
and the dashboard's Explore page call.
"""

from core.explore.browse import BrowsePage, BrowseQuery, SplitTable, browse, split_predictions, split_table
from core.explore.neighbors import AgreementReport, NeighborReport, nearest_neighbors, neighbor_agreement
from core.explore.projection import METHODS, Projection, cached_projection, place
from core.explore.retrieval import RetrievalConfig, RetrievalResult, evaluate_retrieval, retrieve, train_retrieval
from core.explore.retrieval_metrics import DirectionMetrics, RetrievalReport
from core.explore.retrieval_model import LoadedRetrieval, list_retrieval, load_retrieval
from core.explore.spaces import FUSED, SPLIT_CHOICES, SplitSpaces, sample_vectors, split_spaces

__all__ = [
    "FUSED",
    "METHODS",
    "SPLIT_CHOICES",
    "AgreementReport",
    "BrowsePage",
    "BrowseQuery",
    "DirectionMetrics",
    "LoadedRetrieval",
    "NeighborReport",
    "Projection",
    "RetrievalConfig",
    "RetrievalReport",
    "RetrievalResult",
    "SplitSpaces",
    "SplitTable",
    "browse",
    "cached_projection",
    "evaluate_retrieval",
    "list_retrieval",
    "load_retrieval",
    "nearest_neighbors",
    "neighbor_agreement",
    "place",
    "retrieve",
    "sample_vectors",
    "split_predictions",
    "split_spaces",
    "split_table",
    "train_retrieval",
]
