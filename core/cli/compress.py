"""``compress``: a smaller checkpoint from a trained one (int8, fp16, pruning, distillation)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from core.cli.common import print_json
from core.compress import COMPRESSION_METHODS
from core.fusion import FUSION_NAMES


def add_commands(sub: argparse._SubParsersAction) -> None:
    methods = "; ".join(
        f"{'prune:<fraction>' if name == 'prune' else name}: {description}" for name, description in COMPRESSION_METHODS.items()
    )
    p = sub.add_parser("compress", help="a smaller checkpoint from a trained one: int8, fp16, prune:<fraction>, distill")
    p.add_argument("--checkpoint", required=True, help="the parent checkpoint folder")
    p.add_argument("--method", required=True, help=methods)
    p.add_argument("--out", default=None, help="the new checkpoint folder (default: beside the parent, e.g. early-int8)")
    p.add_argument("--data", default=None, help="dataset to fine-tune on and score with (default: the parent's)")
    p.add_argument("--student-hidden", type=int, default=None, help="distill: the student's width (default: half the teacher's)")
    p.add_argument("--student-fusion", default=None, choices=list(FUSION_NAMES), help="distill: the student's strategy (default: the teacher's)")
    p.add_argument("--temperature", type=float, default=4.0, help="distill: softmax temperature (default 4)")
    p.add_argument("--alpha", type=float, default=0.7, help="distill: the teacher's share of the loss, the rest on true labels (default 0.7)")
    p.add_argument("--epochs", type=int, default=None, help="fine-tune epochs (prune: 10, distill: 60)")
    p.add_argument("--lr", type=float, default=None, help="fine-tune learning rate (prune: 5e-4, distill: 2e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda, mps or cpu for training (int8 always runs on the CPU)")
    p.add_argument("--no-cache", action="store_true", help="do not use the on-disk embedding cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--events", default=None, help="append progress events as JSON lines to this file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compress)


def cmd_compress(args: argparse.Namespace) -> int:
    from core.compress import CompressOptions, compress_checkpoint
    from core.encoders.cache import EmbeddingCache
    from core.train.events import event_writer

    options = CompressOptions(**{f.name: getattr(args, f.name) for f in fields(CompressOptions)})  # flags named alike
    result = compress_checkpoint(
        Path(args.checkpoint),
        args.method,
        args.out,
        data=args.data,
        options=options,
        cache=None if args.no_cache else EmbeddingCache(),
        callback=event_writer(args.events) if args.events else None,
        show_progress=not args.quiet,
    )
    if args.json:
        print_json(result.to_json())
        return 0
    for note in result.notes:
        print(f"note: {note}")
    print(f"{result.name}: {result.method} of {result.parent} ({result.parent_sha256[:12]}...) -> {result.path}")
    for split in ("val", "test"):
        ours, theirs = result.metrics.get(split, {}), result.parent_metrics.get(split, {})
        if "accuracy" in ours:
            print(f"  {split} accuracy {ours['accuracy']:.4f} (parent {theirs.get('accuracy', float('nan')):.4f})")
    return 0
