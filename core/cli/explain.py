"""``explain``: attributions of one sample, or of a whole split sharded across torchrun ranks."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from core.cli.common import add_sample_arguments, sample_from_arguments
from core.errors import UsageError
from core.explain.params import SHAP_ALGORITHMS, ExplainParams
from core.explain.registry import EXPLAINERS


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="modality Shapley, SHAP and LIME attributions for one sample")
    p.add_argument("--checkpoint", required=True)
    add_sample_arguments(p)
    p.add_argument("--method", default="all", choices=[*EXPLAINERS, "all"])
    p.add_argument("--task", default=None, help="the task to explain (default: the primary one, 'label')")
    p.add_argument("--target", default=None, help="class (or label) name or index to explain (default: the most probable)")
    p.add_argument("--samples", type=int, default=None, help="LIME samples per modality and SHAP evaluations")
    p.add_argument("--segments", type=int, default=None, help="image superpixels")
    p.add_argument(
        "--shap-algorithm",
        default="partition",
        choices=list(SHAP_ALGORITHMS),
        help="partition: Owen values over modalities, then nearby segments (fast); permutation: flat Shapley samples",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--json", default=None, help="write the explanation(s) to this JSON file")
    p.add_argument("--png", default=None, help="write a static rendering to this PNG file")
    p.add_argument("--data", default=None, help="explain every sample of a dataset split instead (batch mode; torchrun shards it)")
    p.add_argument("--split", default="test", help="with --data: the split to explain")
    p.add_argument("--out", default=None, help="with --data: folder for one JSONL shard per rank and index.json")
    p.add_argument("--limit", type=int, default=None, help="with --data: only the first N samples of the split")
    p.set_defaults(func=cmd_explain)


def explain_params(args: argparse.Namespace) -> ExplainParams:
    params = ExplainParams(seed=args.seed, shap_algorithm=args.shap_algorithm)
    if args.samples is not None:
        params = replace(params, lime_samples=args.samples, shap_evals=args.samples)
    if args.segments is not None:
        params = replace(params, image_segments=args.segments)
    return params


def cmd_explain(args: argparse.Namespace) -> int:
    from core.checkpoints import load_checkpoint
    from core.device import pick_device
    from core.explain import explain
    from core.figures.explanation import explanation_png

    params = explain_params(args)
    if args.data:
        return _explain_split(args, params)
    sample = sample_from_arguments(args)
    loaded = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    results = explain(loaded, sample, args.method, target=args.target, params=params, task=args.task)
    if args.json:
        payload = {name: r.to_json() for name, r in results.items()}
        Path(args.json).write_text(json.dumps(payload if args.method == "all" else payload[args.method]))
    if args.png:
        Path(args.png).write_bytes(explanation_png(list(results.values()), sample.image))
    for name, r in results.items():
        totals = ", ".join(f"{m} {v:+.4f}" for m, v in r.modality_totals.items())
        print(f"{name}: class {r.target_name!r} (p={r.probabilities[r.target]:.3f}); {totals}; {r.metadata['runtime_s']:.2f} s")
    return 0


def _explain_split(args: argparse.Namespace, params: ExplainParams) -> int:
    """Batch mode: every sample of ``--split``, sharded across torchrun ranks."""
    from core import distributed
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.device import pick_device
    from core.explain.batch import explain_split

    if not args.out:
        raise UsageError("--data explains a whole split and needs --out FOLDER for the shards and index.")
    ctx = distributed.init_from_env()
    try:
        loaded = load_checkpoint(args.checkpoint, device=distributed.device_for_rank(pick_device(args.device)))
        dataset = load_dataset(args.data)
        shard = explain_split(
            loaded, dataset, args.out, split=args.split, method=args.method, params=params, limit=args.limit
        )
        if ctx.is_main:
            print(f"wrote {shard.parent / 'index.json'} ({ctx.world} shard(s))")
    finally:
        distributed.shutdown()
    return 0
