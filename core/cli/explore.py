"""``neighbors``, ``project``, ``train-retrieval`` and ``retrieve``: the representation space from the shell.

Each command calls the :mod:`core.explore` function the dashboard's Explore page calls.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from core.cli.common import add_sample_arguments, print_json, sample_from_arguments
from core.errors import UsageError
from core.sample import MODALITIES
from core.settings import settings


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "neighbors",
        help="nearest training samples of one sample in every space, or how often neighbours share a label",
        description="With --sample or --image/--text/--audio: that sample's k nearest records of --index-split in "
        "each modality's space and the fused space, and the nearest one of another class. Without: for every "
        "record of --split, the share of its k nearest --index-split records that share its label.",
    )
    _add_checkpoint_and_data(p)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--split", default="test", help="queries' split (train, val, test, all); default test")
    p.add_argument("--index-split", default="train", help="searched split; default train")
    p.add_argument("--sample", default=None, help="a dataset record id as the query")
    add_sample_arguments(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_neighbors)

    p = sub.add_parser("project", help="2-D map (UMAP or PCA) of a checkpoint's embeddings, as CSV or JSON")
    _add_checkpoint_and_data(p)
    p.add_argument("--split", default="test", help="train, val, test or all; default test")
    p.add_argument("--space", default="fused", help="a modality or 'fused' (default)")
    p.add_argument("--method", default="umap", choices=["umap", "pca"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write here (.csv or .json); default: CSV on stdout")
    p.set_defaults(func=cmd_project)

    p = sub.add_parser(
        "train-retrieval",
        help="train cross-modal retrieval heads (CLIP-style) on a checkpoint's cached embeddings",
    )
    _add_checkpoint_and_data(p)
    p.add_argument("--out", default=None, help="retrieval checkpoint folder (default: $FUSION_RETRIEVAL/<checkpoint name>)")
    p.add_argument("--pairs", default=None, help="e.g. audio-image,image-text (default: every pair)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--dim", type=int, default=None, help="width of the shared space")
    p.add_argument("--temperature", type=float, default=None, help="initial softmax temperature (learned)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the test-split report to this JSON file")
    p.set_defaults(func=cmd_train_retrieval)

    p = sub.add_parser("retrieve", help="the dataset records of one modality that best match a sample's other modality")
    p.add_argument("--retrieval", required=True, help="retrieval checkpoint folder (from train-retrieval)")
    p.add_argument("--checkpoint", default=None, help="checkpoint whose encoders embed (default: the one it was trained on)")
    p.add_argument("--data", required=True, help="dataset folder to search")
    p.add_argument("--split", default="test", help="searched split (train, val, test, all); default test")
    p.add_argument("--to", dest="target", choices=MODALITIES, help="modality of the records to return")
    p.add_argument("--from", dest="query", choices=MODALITIES, help="the sample's modality to search with (default: the one given)")
    add_sample_arguments(p)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--evaluate", action="store_true", help="instead: Recall@K, median rank, precision@K, mAP per direction on --split")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_retrieve)


def _add_checkpoint_and_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--device", default=None)


def _load(args: argparse.Namespace, checkpoint: str | None = None):
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.device import pick_device

    return load_checkpoint(checkpoint or args.checkpoint, device=pick_device(args.device)), load_dataset(args.data)


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise UsageError(f"{name} must be at least 1, got {value}.")
    return value


def cmd_neighbors(args: argparse.Namespace) -> int:
    from core.data import load_sample
    from core.encoders.cache import EmbeddingCache
    from core.explore import nearest_neighbors, neighbor_agreement, sample_vectors, split_spaces
    from core.inference import predict

    k = _positive("--k", args.k)
    loaded, dataset = _load(args)
    cache = EmbeddingCache()
    index = split_spaces(loaded, dataset, args.index_split, cache=cache)
    if args.sample is None and not (args.image or args.text or args.audio):
        report = neighbor_agreement(split_spaces(loaded, dataset, args.split, cache=cache), index, k)
        if args.json:
            print_json(report.to_json())
            return 0
        print(f"{loaded.name}: {args.split} samples, their {k} nearest {args.index_split} samples")
        print(f"  {'space':<8} {'queries':>8} {'same label':>11} {'k-NN accuracy':>14} {'chance':>7}")
        for space in report.spaces:
            print(f"  {space.space:<8} {space.queries:>8} {space.agreement:>11.3f} {space.majority_accuracy:>14.3f} {space.chance:>7.3f}")
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        return 0
    if args.sample is not None:
        record = dataset.record(args.sample)
        sample, label, reference, query = load_sample(record, dataset.limits), record.label, "label", f"record {record.id}"
    else:
        sample, query = sample_from_arguments(args), "the given sample"
        prediction = predict(loaded, sample)
        label, reference = (prediction.prediction, "prediction") if prediction else (None, "nearest neighbour")
    report = nearest_neighbors(
        index, sample_vectors(loaded, sample), k, query=query, reference_label=label, reference=reference, exclude_id=args.sample
    )
    if args.json:
        print_json(report.to_json())
        return 0
    print(f"{query}: {reference} {label!r}; nearest {args.index_split} samples by cosine distance ({loaded.name})")
    for space in report.spaces:
        print(f"  {space.space}: " + ", ".join(f"{n.id} ({n.label}, {n.distance:.3f})" for n in space.neighbors))
        if space.other_class is not None:
            other = space.other_class
            print(f"    nearest of another class: {other.id} ({other.label}, {other.distance:.3f}, rank {other.rank})")
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from core.encoders.cache import EmbeddingCache
    from core.explore import cached_projection, split_spaces

    loaded, dataset = _load(args)
    spaces = split_spaces(loaded, dataset, args.split, cache=EmbeddingCache())
    result = cached_projection(spaces, args.space, args.method, seed=args.seed)
    labels = dict(zip(spaces.ids(args.space), spaces.labels(args.space), strict=True))
    splits = {r.id: r.split for r in spaces.records}
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out and Path(args.out).suffix.lower() == ".json":
        Path(args.out).write_text(json.dumps(result.to_json()), encoding="utf-8")
        return 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "label", "split", "x", "y"])
    for record_id, (x, y) in zip(result.ids, result.coords, strict=True):
        writer.writerow([record_id, labels[record_id], splits[record_id], f"{x:.6g}", f"{y:.6g}"])
    if args.out:
        Path(args.out).write_text(buffer.getvalue(), encoding="utf-8")
    else:
        sys.stdout.write(buffer.getvalue())
    return 0


def _print_report(report) -> None:
    print(f"{'direction':<16} {'R@1':>12} {'R@5':>12} {'R@10':>12} {'median rank':>14} {'P@10':>12} {'mAP':>12}")
    for d in report.directions:
        recall = [f"{d.recall[k]:.3f} ({d.recall_chance[k]:.3f})" for k in ("1", "5", "10")]
        print(
            f"{d.direction:<16} {recall[0]:>12} {recall[1]:>12} {recall[2]:>12} "
            f"{f'{d.median_rank:g} ({d.median_rank_chance:g})':>14} "
            f"{f'{d.precision:.3f} ({d.precision_chance:.3f})':>12} {f'{d.map:.3f} ({d.map_chance:.3f})':>12}"
        )
    print(f"({report.split} split; chance levels in brackets; R@K and median rank: a row's own item; P@10, mAP: same label)")
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)


def cmd_train_retrieval(args: argparse.Namespace) -> int:
    from core.encoders.cache import EmbeddingCache
    from core.explore import RetrievalConfig, RetrievalReport, load_retrieval, train_retrieval

    loaded, dataset = _load(args)
    overrides = {"epochs": args.epochs, "dim": args.dim, "temperature": args.temperature}
    config = RetrievalConfig(seed=args.seed, **{k: v for k, v in overrides.items() if v is not None})
    pairs = [tuple(p.split("-")) for p in args.pairs.split(",")] if args.pairs else None
    if pairs and any(len(p) != 2 for p in pairs):
        raise UsageError("--pairs takes modality pairs like audio-image,image-text.")
    out = Path(args.out) if args.out else settings().retrieval_dir / loaded.name
    path = train_retrieval(
        loaded, dataset, out, config, pairs=pairs, cache=EmbeddingCache(), progress=lambda m: print(m, file=sys.stderr)
    )
    report = RetrievalReport.from_json(load_retrieval(path).card.report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    _print_report(report)
    print(f"saved {path}", file=sys.stderr)
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    from core.encoders.cache import EmbeddingCache
    from core.explore import evaluate_retrieval, load_retrieval, retrieve, split_spaces

    retrieval = load_retrieval(args.retrieval)
    loaded, dataset = _load(args, args.checkpoint or retrieval.card.source.path)
    if args.evaluate:
        report = evaluate_retrieval(retrieval.model, loaded, dataset, args.split, cache=EmbeddingCache(), name=retrieval.name)
        if args.json:
            print_json(report.to_json())
        else:
            _print_report(report)
        return 0
    sample = sample_from_arguments(args)
    query = args.query or (sample.present()[0] if len(sample.present()) == 1 else None)
    if query is None:
        raise UsageError("The sample has several modalities: say which one to search with (--from).")
    if args.target is None:
        raise UsageError("Say which modality to retrieve (--to image, --to audio or --to text).")
    spaces = split_spaces(loaded, dataset, args.split, cache=EmbeddingCache())
    result = retrieve(retrieval, spaces, sample, query, args.target, _positive("--k", args.k), source=loaded)
    if args.json:
        print_json(result.to_json())
        return 0
    print(f"{args.target} records of {args.split} closest to the given {query} ({retrieval.name}):")
    for hit in result.hits:
        print(f"  {hit.rank:>3}. {hit.id:<16} label {hit.label:<10} similarity {hit.similarity:.3f}")
    return 0
