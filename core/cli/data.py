"""``demo`` (build the embedded demo and its checkpoints) and ``validate`` (check a dataset folder)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import print_checkpoint_table, print_json
from core.settings import settings

DEMO_MODELS = "all,baselines"


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build the embedded demo dataset and its checkpoints (skips what exists)")
    p.add_argument("--out", default=None, help="dataset folder (default: demo_data/ or $FUSION_DEMO_DATA)")
    p.add_argument("--checkpoints", default=None, help="checkpoint folder (default: checkpoints/ or $FUSION_CHECKPOINTS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-only", action="store_true", help="build the dataset but train nothing")
    p.add_argument("--force", action="store_true", help="rebuild and retrain even if up to date")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("validate", help="check a dataset folder and list every bad row")
    p.add_argument("--data", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_validate)


def cmd_demo(args: argparse.Namespace) -> int:
    from core.data.demo import build_demo, demo_is_built

    out = Path(args.out) if args.out else settings().demo_data
    if demo_is_built(out, args.seed) and not args.force:
        print(f"Demo dataset already built in {out}", file=sys.stderr)
    else:
        print(f"Building the demo dataset in {out} ...", file=sys.stderr)
        build_demo(out, seed=args.seed, progress=True)
    if args.data_only:
        return 0
    checkpoints = Path(args.checkpoints) if args.checkpoints else settings().checkpoints
    return _train_missing_demo_checkpoints(out, checkpoints, args.seed, args.force)


def _train_missing_demo_checkpoints(data_dir: Path, checkpoint_dir: Path, seed: int, force: bool) -> int:
    from core.card import read_card
    from core.data import load_dataset
    from core.encoders.cache import EmbeddingCache
    from core.errors import CheckpointError
    from core.train import TrainConfig, Trainer, parse_model_names

    dataset = load_dataset(data_dir)
    names = parse_model_names(DEMO_MODELS, dataset.modalities())
    missing = []
    for name in names:
        try:
            if force or read_card(checkpoint_dir / name).dataset.fingerprint != dataset.fingerprint:
                missing.append(name)
        except CheckpointError:
            missing.append(name)
    if not missing:
        print(f"Demo checkpoints are up to date in {checkpoint_dir}", file=sys.stderr)
    else:
        print(f"Training {len(missing)} demo checkpoints into {checkpoint_dir}: {', '.join(missing)}", file=sys.stderr)
        Trainer(dataset, checkpoint_dir, TrainConfig(seed=seed), cache=EmbeddingCache()).run(missing)
    print_checkpoint_table(checkpoint_dir)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from core.data import validate_dataset

    report = validate_dataset(args.data)
    if args.json:
        print_json({"ok": report.ok, "rows": report.n_rows, "issues": [i.__dict__ for i in report.issues]})
    else:
        print(report.format() if not report.ok else f"{args.data}: {report.n_rows} rows, no problems found.")
    return 0 if report.ok else 1
