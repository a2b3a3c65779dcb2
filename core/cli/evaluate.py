"""``evaluate``: metrics, curves, robustness and cost of checkpoints on a split (JSON, HTML)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import UsageError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="metrics, curves, robustness and cost of checkpoints on a split")
    p.add_argument("--checkpoint", action="append", required=True, help="checkpoint folder (repeat to compare)")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--task", default=None, help="the task to evaluate (default: the primary one, 'label')")
    p.add_argument("--json", default=None, help="write every result to this JSON file")
    p.add_argument("--html", default=None, help="write a self-contained HTML report")
    p.add_argument("--no-robustness", action="store_true", help="skip missing-modality, corruption and reliance analyses")
    p.add_argument(
        "--sweep-rows",
        type=int,
        default=1000,
        help="score each corruption sweep on a seeded sample of this many rows (0: every row; default 1000)",
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for confidence intervals (0: none)")
    p.add_argument(
        "--slices",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="slices, worst slices, EMAP, modality usage, ground-truth checks and the verdict (default: on)",
    )
    p.add_argument("--slice-columns", default=None, help="comma list of metadata columns to slice by (default: every usable one)")
    p.add_argument("--min-support", type=int, default=20, help="fewest rows a slice needs to be tested (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--no-cache", action="store_true", help="neither read nor fill the embedding store")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Under ``torchrun`` the split's encoding is sharded across the ranks; rank 0 reports."""
    from core import distributed

    ctx = distributed.init_from_env()
    try:
        return _evaluate(args, ctx)
    finally:
        distributed.shutdown()


def _evaluate(args: argparse.Namespace, ctx) -> int:
    from core import distributed
    from core.data import load_dataset
    from core.device import pick_device
    from core.evaluate import EvaluationOptions, evaluate
    from core.evaluate.sharing import sharing_comparisons
    from core.report import write_html_report

    if args.bootstrap < 0:
        raise UsageError("--bootstrap must be 0 (no intervals) or a positive number of resamples.")
    dataset = load_dataset(args.data)
    if args.sweep_rows < 0:
        raise UsageError("--sweep-rows must be 0 (every row) or a positive number of rows.")
    if args.min_support < 1:
        raise UsageError("--min-support must be at least 1.")
    options = EvaluationOptions(
        bootstrap=args.bootstrap,
        seed=args.seed,
        robustness=not args.no_robustness,
        analysis=args.slices,
        slice_columns=tuple(c.strip() for c in args.slice_columns.split(",") if c.strip()) if args.slice_columns else None,
        min_support=args.min_support,
        sweep_rows=args.sweep_rows,
    )
    report = evaluate(
        args.checkpoint,
        dataset,
        args.split,
        options,
        embedding_cache=not args.no_cache,
        device=distributed.device_for_rank(pick_device(args.device)),
        progress=(lambda msg: print(msg, file=sys.stderr)) if ctx.is_main else None,
        task=args.task,
        shard=ctx.enabled,
    )
    if not ctx.is_main:
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json()), encoding="utf-8")
    if args.html:
        write_html_report(report, args.html)
    headline = "micro F1" if report.task_kind == "multi" else "accuracy"
    key = "f1_micro" if report.task_kind == "multi" else "accuracy"
    print(f"task {report.task} ({report.task_kind}-label), split {report.split}")
    print(f"{'checkpoint':<16} {headline:>26} {'macro F1':>9} {'ROC AUC':>8}")
    for result in report.checkpoints:
        score = result.intervals.get(key)
        interval = f" [{score.low:.3f}, {score.high:.3f}]" if score is not None and score.low is not None else ""
        values = result.metrics.values
        auc = f"{values['roc_auc_macro']:.3f}" if values.get("roc_auc_macro") is not None else "-"
        print(f"{result.name:<16} {values[key]:>10.3f}{interval:<16} {values['f1_macro']:>9.3f} {auc:>8}")
    for row in sharing_comparisons(report, resamples=options.bootstrap or 1000):
        d = row.difference
        ci = f" [{d.low:+.3f}, {d.high:+.3f}]" if d.low is not None else ""
        print(f"sharing: {row.strategy} with every task {row.shared.point:.3f} vs {row.task} alone {row.alone.point:.3f}: {d.point:+.3f}{ci}, McNemar p = {row.p:.2g}")
    analysed = [r for r in report.checkpoints if r.analysis is not None]
    if analysed:
        print("\nModality use (mean |Shapley| of the true class's probability; EMAP: share of accuracy from interactions):")
        for result in analysed:
            usage = sorted(result.analysis.usage.mean_abs_shapley.items(), key=lambda item: -item[1])
            emap = result.analysis.emap
            share = f"; EMAP {100 * max(0.0, emap.interaction_share):.0f}%" if emap else ""
            print(f"  {result.name:<16} " + ", ".join(f"{m} {v:.3f}" for m, v in usage) + share)
    if report.verdict is not None:
        print("\nVerdict:")
        for sentence in report.verdict.sentences:
            print(f"  - {sentence}")
    print(f"{len(report.checkpoints)} checkpoint(s) on {report.split} in {report.seconds:.1f} s", file=sys.stderr)
    return 0
