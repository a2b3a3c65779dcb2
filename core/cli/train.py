"""``train``: fusion strategies and unimodal baselines on a dataset folder (torchrun shards it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import print_checkpoint_table, print_json
from core.errors import UsageError
from core.sample import MODALITIES


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train fusion strategies and unimodal baselines")
    p.add_argument("--data", required=True, help="dataset folder with manifest.csv or manifest.jsonl")
    p.add_argument(
        "--fusion",
        default="all",
        help="all | baselines | single-task | comma list of early,late,gated,attention,tensor,lowrank,<modality>-only,<fusion>.<task>",
    )
    p.add_argument("--tasks", default=None, help="comma list of the dataset's tasks to learn (default: all of them)")
    p.add_argument(
        "--task-weighting",
        default="fixed",
        choices=["fixed", "uncertainty"],
        help="how task losses are summed: fixed weights, or learned uncertainty weighting (Kendall et al. 2018)",
    )
    p.add_argument("--task-weights", default=None, help="fixed weights, e.g. label=1,pitch=0.5 (default 1 each)")
    p.add_argument("--out", default="checkpoints", help="checkpoint folder")
    p.add_argument("--encoders", default=None, help="e.g. image=efficientnet-lite0,text=minilm,audio=builtin")
    for modality in MODALITIES:
        p.add_argument(f"--{modality}-encoder", default=None, help=f"encoder for {modality} (builtin, pretrained name, or hf:<name-or-dir>)")
    p.add_argument("--epochs", type=int, default=60, help="max epochs of each fusion head")
    p.add_argument("--encoder-epochs", type=int, default=30, help="max epochs of each built-in encoder")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs")
    p.add_argument("--modality-dropout", type=float, default=0.3, help="probability of hiding each modality per training sample")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout inside the fusion modules")
    p.add_argument(
        "--augment",
        default=None,
        help="augment the built-in encoders' training inputs, fresh each epoch: all | image,audio,text | "
        "image=crop+rotate+jitter+noise,audio=shift+gain+noise+specaugment,text=dropout+swap (default: none)",
    )
    p.add_argument(
        "--class-weights",
        default="none",
        choices=["none", "auto"],
        help="auto: weigh each class in the loss by its inverse frequency in the training split",
    )
    p.add_argument("--balanced-sampler", action="store_true", help="draw each epoch's rows so that every class is seen equally often")
    p.add_argument("--resume", action="store_true", help="keep complete checkpoints and continue interrupted ones from their last epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    p.add_argument("--skip-invalid", action="store_true", help="train on the valid rows of a dataset with errors")
    p.add_argument("--no-cache", action="store_true", help="do not use the on-disk embedding cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--events", default=None, help="append progress events as JSON lines to this file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)


def encoder_choices(args: argparse.Namespace) -> dict[str, str]:
    """``--encoders m=choice,...`` merged with the ``--<modality>-encoder`` flags (which win)."""
    encoders = {}
    for item in filter(None, (args.encoders or "").split(",")):
        modality, _, choice = item.partition("=")
        if not choice:
            raise UsageError(f"--encoders expects modality=choice pairs, got {item!r}")
        encoders[modality.strip()] = choice.strip()
    for modality in MODALITIES:
        choice = getattr(args, f"{modality}_encoder")
        if choice:
            encoders[modality] = choice
    return encoders


def task_weights(text: str | None) -> dict[str, float]:
    """``--task-weights label=1,pitch=0.5`` as a dict."""
    weights = {}
    for item in filter(None, (text or "").split(",")):
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--task-weights expects task=number pairs, got {item!r}") from None
    return weights


def cmd_train(args: argparse.Namespace) -> int:
    from core import distributed

    ctx = distributed.init_from_env()
    try:
        return _train(args, ctx.is_main)
    finally:
        distributed.shutdown()


def _train(args: argparse.Namespace, is_main: bool) -> int:
    from core.data import load_dataset
    from core.encoders.cache import EmbeddingCache
    from core.train import TrainConfig, Trainer, parse_model_names
    from core.train.augment import parse_augmentations
    from core.train.events import event_writer

    dataset = load_dataset(args.data, seed=args.seed, skip_invalid=args.skip_invalid)
    if dataset.skipped is not None:
        print(f"Skipping {len(dataset.skipped.bad_rows)} invalid rows:\n{dataset.skipped.format(max_lines=20)}", file=sys.stderr)
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip()) if args.tasks else None
    for name in tasks or ():
        dataset.task(name)  # an unknown task is refused here, with the dataset's tasks named
    names = parse_model_names(args.fusion, dataset.modalities(), list(tasks or [t.name for t in dataset.tasks]))
    config = TrainConfig(
        encoders=encoder_choices(args),
        hidden=args.hidden,
        batch_size=args.batch_size,
        encoder_epochs=args.encoder_epochs,
        fusion_epochs=args.epochs,
        patience=args.patience,
        modality_dropout=args.modality_dropout,
        dropout=args.dropout,
        seed=args.seed,
        device=args.device,
        tasks=tasks,
        task_weighting=args.task_weighting,
        task_weights=task_weights(args.task_weights),
        augment=parse_augmentations(args.augment),
        class_weights=args.class_weights,
        balanced_sampler=args.balanced_sampler,
    )
    trainer = Trainer(
        dataset,
        args.out,
        config,
        cache=None if args.no_cache else EmbeddingCache(),
        show_progress=not args.quiet,
        callback=event_writer(args.events) if args.events else None,
        resume=args.resume,
    )
    results = trainer.run(names)
    if not is_main:
        return 0
    if args.json:
        print_json([{"name": r.name, "path": str(r.path), "metrics": r.metrics, "epochs": r.epochs} for r in results])
    else:
        print_checkpoint_table(Path(args.out))
    return 0
