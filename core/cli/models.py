"""``checkpoints list`` and ``predict``: what checkpoints there are and what they predict."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import add_sample_arguments, print_checkpoint_table, print_json, sample_from_arguments
from core.errors import UsageError
from core.settings import settings


def add_commands(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("embed", help="embed a dataset with a checkpoint's encoders (fills the embedding store; torchrun shards it)")
    e.add_argument("--checkpoint", required=True, help="checkpoint folder whose encoders embed the data")
    e.add_argument("--data", required=True, help="dataset folder")
    e.add_argument("--split", default="all", choices=["all", "train", "val", "test"], help="rows to embed (default: all)")
    e.add_argument("--out", default=None, help="also write ids, presence and embeddings to this .npz file")
    e.add_argument("--no-cache", action="store_true", help="neither read nor fill the embedding store")
    e.add_argument("--device", default=None)
    e.set_defaults(func=cmd_embed)

    p = sub.add_parser("checkpoints", help="list checkpoints")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("list", help="path, fusion, modalities and accuracy of each checkpoint")
    q.add_argument("--dir", default=None, help="checkpoint folder (default: checkpoints/ or $FUSION_CHECKPOINTS)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_checkpoints)

    p = sub.add_parser("predict", help="class probabilities for one sample")
    p.add_argument("--checkpoint", required=True)
    add_sample_arguments(p)
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from core.card import list_checkpoints

    root = Path(args.dir) if args.dir else settings().checkpoints
    if args.json:
        print_json([i.to_json() for i in list_checkpoints(root)])
    else:
        print_checkpoint_table(root)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from core.checkpoints import load_checkpoint
    from core.device import pick_device
    from core.inference import predict

    sample = sample_from_arguments(args)
    loaded = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    prediction = predict(loaded, sample)
    if prediction is None:
        raise UsageError(
            f"{loaded.name} uses {', '.join(loaded.model.modalities)}; give at least one of them "
            f"(you gave {', '.join(sample.present())})."
        )
    if args.json:
        print_json({"checkpoint": str(loaded.path), **prediction.to_json()})
        return 0
    if prediction.ignored_modalities:
        print(f"note: this checkpoint does not use {', '.join(prediction.ignored_modalities)}; ignored.", file=sys.stderr)
    for task in prediction.tasks:
        what = "labels" if task.kind == "multi" else "class"
        print(f"{prediction.checkpoint} ({prediction.fusion}), task {task.task}: predicted {what} {'|'.join(task.predicted) or '(none)'}")
        ranking = sorted(zip(task.classes, task.probabilities, strict=True), key=lambda pair: -pair[1])
        for name, probability in ranking[: args.top]:
            print(f"  {name:<12} {probability:6.3f}  {'#' * int(round(probability * 40))}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    """Under ``torchrun`` each rank encodes every N-th shard of the rows; rank 0 stores and writes."""
    import io

    import numpy as np

    from core import distributed
    from core.atomic import write_bytes_atomic
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.device import pick_device
    from core.embeddings import embed_records
    from core.encoders.cache import EmbeddingCache

    ctx = distributed.init_from_env()
    try:
        dataset = load_dataset(args.data)
        records = dataset.records if args.split == "all" else dataset.split(args.split)
        loaded = load_checkpoint(args.checkpoint, device=distributed.device_for_rank(pick_device(args.device)))
        embedded = embed_records(
            loaded.model,
            records,
            cache=None if args.no_cache else EmbeddingCache(),
            limits=dataset.limits,
            shard=ctx.enabled,
        )
        if not ctx.is_main:
            return 0
        if args.out:
            buffer = io.BytesIO()
            arrays = {f"embedding_{m}": e.numpy() for m, e in embedded.embeddings.items()}
            np.savez(buffer, ids=np.array(embedded.ids), modalities=np.array(loaded.model.modalities),
                     present=embedded.present.numpy(), **arrays)  # fmt: skip
            write_bytes_atomic(args.out, buffer.getvalue())
        counts = ", ".join(f"{m} {int(embedded.present[:, j].sum())}" for j, m in enumerate(loaded.model.modalities))
        print(f"embedded {len(records)} row(s) of {args.split} with {loaded.name} ({counts}) on {ctx.world} rank(s)")
        if args.out:
            print(f"wrote {args.out}")
    finally:
        distributed.shutdown()
    return 0
