"""``explain``: attributions of one sample (with ``--sanity``, their sanity checks), or of a whole
split sharded across torchrun ranks; ``trust``: which method to believe on a checkpoint."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from core.cli.common import add_sample_arguments, sample_from_arguments
from core.errors import UsageError
from core.explain import EXPLAINER_NAMES, RANKED_METHODS
from core.explain.params import SHAP_ALGORITHMS, ExplainParams


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="modality Shapley, SHAP, LIME and gradient attributions for one sample")
    p.add_argument("--checkpoint", required=True)
    add_sample_arguments(p)
    p.add_argument("--method", default="all", choices=[*EXPLAINER_NAMES, "all"])
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
    p.add_argument("--ig-steps", type=int, default=None, help="integration points of Integrated Gradients (default 64)")
    p.add_argument(
        "--sanity",
        action="store_true",
        help="also run the sanity checks on this sample: cascading model randomisation, max-sensitivity, seed variation",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--json", default=None, help="write the explanation(s) (and with --sanity, the checks) to this JSON file")
    p.add_argument("--png", default=None, help="write a static rendering to this PNG file")
    p.add_argument("--data", default=None, help="explain every sample of a dataset split instead (batch mode; torchrun shards it)")
    p.add_argument("--split", default="test", help="with --data: the split to explain")
    p.add_argument("--out", default=None, help="with --data: folder for one JSONL shard per rank and index.json")
    p.add_argument("--limit", type=int, default=None, help="with --data: only the first N samples of the split")
    p.set_defaults(func=cmd_explain)

    t = sub.add_parser("trust", help="which attribution method to believe on a checkpoint, per modality")
    t.add_argument("--checkpoint", required=True)
    t.add_argument("--data", required=True, help="dataset folder whose split is explained")
    t.add_argument("--split", default="test")
    t.add_argument("--task", default=None, help="the task to explain (default: the primary one, 'label')")
    t.add_argument("--samples", type=int, default=24, help="rows explained for faithfulness and time")
    t.add_argument("--sanity-samples", type=int, default=6, help="of those, rows for the randomisation and noise checks")
    t.add_argument("--methods", default=",".join(RANKED_METHODS), help="comma-separated methods to assess")
    t.add_argument("--no-cache", action="store_true", help="recompute even if this assessment is cached")
    t.add_argument("--device", default=None)
    t.add_argument("--json", default=None, help="write the assessment to this JSON file")
    t.set_defaults(func=cmd_trust)


def explain_params(args: argparse.Namespace) -> ExplainParams:
    params = ExplainParams(seed=args.seed, shap_algorithm=args.shap_algorithm)
    if args.samples is not None:
        params = replace(params, lime_samples=args.samples, shap_evals=args.samples)
    if args.segments is not None:
        params = replace(params, image_segments=args.segments)
    if args.ig_steps is not None:
        params = replace(params, ig_steps=args.ig_steps)
    return params


def cmd_explain(args: argparse.Namespace) -> int:
    from core.checkpoints import load_checkpoint
    from core.device import pick_device
    from core.explain import explain
    from core.explain.trust import sample_checks
    from core.figures.explanation import explanation_png

    params = explain_params(args)
    if args.data:
        return _explain_split(args, params)
    sample = sample_from_arguments(args)
    loaded = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    results = explain(loaded, sample, args.method, target=args.target, params=params, task=args.task)
    checks = (
        sample_checks(loaded.model, sample, list(results), params, args.target, task=args.task, seed=args.seed)
        if args.sanity
        else None
    )
    if args.json:
        payload = {name: r.to_json() for name, r in results.items()}
        payload = payload if args.method == "all" else payload[args.method]
        Path(args.json).write_text(json.dumps({"explanations": payload, "sanity": checks} if checks else payload))
    if args.png:
        Path(args.png).write_bytes(explanation_png(list(results.values()), sample.image))
    for name, r in results.items():
        if "not_applicable" in r.metadata:
            print(f"{name}: not applicable: {r.metadata['not_applicable']}")
            continue
        totals = ", ".join(f"{m} {v:+.4f}" for m, v in r.modality_totals.items())
        fixed = "".join(f"; {m} held fixed ({why})" for m, why in r.metadata.get("not_differentiable", {}).items())
        print(f"{name}: class {r.target_name!r} (p={r.probabilities[r.target]:.3f}); {totals}; {r.metadata['runtime_s']:.2f} s{fixed}")
    if checks:
        print(sample_checks_text(checks))
    return 0


def sample_checks_text(checks: dict[str, dict]) -> str:
    """The ``--sanity`` table: per method and modality, the randomisation verdict, max-sensitivity, seed variation."""
    lines = ["sanity checks on this sample (rank correlation with the trained model's map, averaged over the cascade):"]
    for method, check in checks.items():
        if "not_applicable" in check:
            lines.append(f"  {method:<22} not applicable: {check['not_applicable']}")
            continue
        randomisation, sensitivity = check["randomisation"], check["max_sensitivity"]["per_modality"]
        variation = check["seed_variation"] or {}
        for modality, passed in randomisation["passed"].items():
            verdict = "not judged" if passed is None else "pass" if passed else "FAIL"
            rho = randomisation["score"][modality]
            seeds = ""
            if variation:
                seeds = f"; seeds: rho {variation['rank_correlation'][modality]:+.2f}, sign flips {variation['sign_flips'][modality]:.0%}"
            rho_text = "n/a" if rho is None else f"{rho:+.2f}"
            lines.append(
                f"  {method:<22} {modality:<6} randomisation {verdict:<10} (rho {rho_text}); "
                f"max-sensitivity {sensitivity.get(modality, float('nan')):.3f}{seeds}"
            )
    return "\n".join(lines)


def cmd_trust(args: argparse.Namespace) -> int:
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.device import pick_device
    from core.explain.trust import AssessmentOptions, assess_methods
    from core.figures.trust import ranking_table, recommendation_text, sanity_table

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    options = AssessmentOptions(
        split=args.split, samples=args.samples, sanity_samples=args.sanity_samples, methods=methods, task=args.task
    )
    loaded = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    report = assess_methods(loaded, load_dataset(args.data), options, use_cache=not args.no_cache)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json()))
    print(recommendation_text(report).replace("**", ""))
    print(ranking_table(report).to_string(index=False))
    print(sanity_table(report).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
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
