"""``checkpoints list`` and ``predict``: what checkpoints there are and what they predict."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import add_sample_arguments, print_checkpoint_table, print_json, sample_from_arguments
from core.errors import UsageError
from core.settings import settings


def add_commands(sub: argparse._SubParsersAction) -> None:
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
    from core.checkpoints import list_checkpoints

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
