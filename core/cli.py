"""``python -m core <command>``: the batch jobs, calling the same functions as the dashboard.

Every user-facing failure (bad input, bad dataset, refused checkpoint) is printed
as one clear line on stderr with exit code 2; no tracebacks for expected errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.distributed import DistContext

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEMO_DIR = PROJECT_ROOT / "demo_data"
DEMO_MODELS = "all,baselines"


def default_demo_dir() -> Path:
    return Path(os.environ.get("FUSION_DEMO_DATA", DEFAULT_DEMO_DIR))


class UsageError(Exception):
    """A command-line mistake; printed without a traceback."""


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))


# ---------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from core.checkpoints import default_checkpoint_dir
    from core.data.demo import build_demo, demo_is_built

    out = Path(args.out)
    if demo_is_built(out, args.seed) and not args.force:
        print(f"Demo dataset already built in {out}", file=sys.stderr)
    else:
        print(f"Building the demo dataset in {out} ...", file=sys.stderr)
        build_demo(out, seed=args.seed, progress=True)
    if args.data_only:
        return 0
    ckpt_dir = Path(args.checkpoints) if args.checkpoints else default_checkpoint_dir()
    return _train_missing_demo_checkpoints(out, ckpt_dir, args.seed, args.force)


def _train_missing_demo_checkpoints(data_dir: Path, ckpt_dir: Path, seed: int, force: bool) -> int:
    from core.checkpoints import CheckpointError, read_card
    from core.data import load_dataset
    from core.encoders.cache import EmbeddingCache
    from core.train import TrainConfig, Trainer, parse_model_names

    dataset = load_dataset(data_dir)
    names = parse_model_names(DEMO_MODELS, dataset.modalities())
    missing = []
    for name in names:
        try:
            card = read_card(ckpt_dir / name)
            if force or card.get("dataset", {}).get("fingerprint") != dataset.fingerprint:
                missing.append(name)
        except CheckpointError:
            missing.append(name)
    if not missing:
        print(f"Demo checkpoints are up to date in {ckpt_dir}", file=sys.stderr)
    else:
        print(f"Training {len(missing)} demo checkpoints into {ckpt_dir}: {', '.join(missing)}", file=sys.stderr)
        Trainer(dataset, ckpt_dir, TrainConfig(seed=seed), cache=EmbeddingCache()).run(missing)
    _print_checkpoint_table(ckpt_dir)
    return 0


# ---------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    from core.data import validate_dataset

    report = validate_dataset(args.data)
    if args.json:
        _print_json(
            {"ok": report.ok, "rows": report.n_rows, "issues": [i.__dict__ for i in report.issues]}
        )
    else:
        print(report.format() if not report.ok else f"{args.data}: {report.n_rows} rows, no problems found.")
    return 0 if report.ok else 1


# ---------------------------------------------------------------- train
def _event_writer(path: Path):
    """A training callback appending each event as one JSON line (read by the dashboard's Train page)."""
    import time

    path.parent.mkdir(parents=True, exist_ok=True)

    def write(event: dict) -> None:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"time": time.time(), **event}) + "\n")

    return write


def cmd_train(args: argparse.Namespace) -> int:
    from core import distributed

    ctx = distributed.init_from_env()
    try:
        return _train(args, ctx)
    finally:
        distributed.shutdown()


def _train(args: argparse.Namespace, ctx: DistContext) -> int:
    from core.data import load_dataset
    from core.encoders.cache import EmbeddingCache
    from core.train import TrainConfig, Trainer, parse_model_names

    dataset = load_dataset(args.data, seed=args.seed, skip_invalid=args.skip_invalid)
    if dataset.skipped is not None and not dataset.skipped.ok:
        print(f"Skipping {len(dataset.skipped.issues)} invalid rows:\n{dataset.skipped.format(max_lines=20)}", file=sys.stderr)
    names = parse_model_names(args.fusion, dataset.modalities())
    encoders = {}
    for item in filter(None, (args.encoders or "").split(",")):
        modality, _, choice = item.partition("=")
        if not choice:
            raise UsageError(f"--encoders expects modality=choice pairs, got {item!r}")
        encoders[modality.strip()] = choice.strip()
    for modality in ("image", "text", "audio"):
        choice = getattr(args, f"{modality}_encoder")
        if choice:
            encoders[modality] = choice
    config = TrainConfig(
        encoders=encoders,
        hidden=args.hidden,
        batch_size=args.batch_size,
        encoder_epochs=args.encoder_epochs,
        fusion_epochs=args.epochs,
        patience=args.patience,
        modality_dropout=args.modality_dropout,
        dropout=args.dropout,
        seed=args.seed,
        device=args.device,
    )
    cache = None if args.no_cache else EmbeddingCache()
    callback = _event_writer(Path(args.events)) if args.events else None
    trainer = Trainer(
        dataset, args.out, config, cache=cache, show_progress=not args.quiet, callback=callback, resume=args.resume
    )
    results = trainer.run(names)
    if not ctx.is_main:
        return 0
    if args.json:
        _print_json([{"name": r.name, "path": str(r.path), "metrics": r.metrics, "epochs": r.epochs} for r in results])
    else:
        _print_checkpoint_table(Path(args.out))
    return 0


# ---------------------------------------------------------------- checkpoints
def _print_checkpoint_table(root: Path) -> None:
    from core.checkpoints import list_checkpoints

    infos = list_checkpoints(root)
    if not infos:
        print(f"No checkpoints in {root}")
        return
    print(f"Checkpoints in {root}:")
    print(f"  {'name':<14} {'fusion':<10} {'modalities':<18} {'val acc':>8} {'test acc':>8}  path")
    for i in infos:
        if i.error:
            print(f"  {i.name:<14} unreadable: {i.error}")
            continue
        val = f"{i.val_accuracy:.3f}" if i.val_accuracy is not None else "-"
        test = f"{i.test_accuracy:.3f}" if i.test_accuracy is not None else "-"
        print(f"  {i.name:<14} {i.fusion:<10} {'+'.join(i.modalities):<18} {val:>8} {test:>8}  {i.path}")


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from core.checkpoints import default_checkpoint_dir, list_checkpoints

    root = Path(args.dir) if args.dir else default_checkpoint_dir()
    if args.json:
        _print_json([i.to_json() for i in list_checkpoints(root)])
    else:
        _print_checkpoint_table(root)
    return 0


# ---------------------------------------------------------------- predict
def load_cli_sample(image: str | None, text: str | None, audio: str | None):
    """Decode the files and text given on the command line (through core.io's limits)."""
    from core.io import Limits, decode_audio, decode_image, decode_text, read_file
    from core.sample import DecodedSample

    limits = Limits.from_env()
    if not (image or text or audio):
        raise UsageError("Give at least one of --image, --text, --audio.")
    return DecodedSample(
        image=decode_image(read_file(image, limits), limits) if image else None,
        text=decode_text(text, limits) if text else None,
        audio=decode_audio(read_file(audio, limits), limits) if audio else None,
    )


def cmd_predict(args: argparse.Namespace) -> int:
    from core.checkpoints import load_checkpoint
    from core.device import pick_device

    sample = load_cli_sample(args.image, args.text, args.audio)
    loaded = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    ignored = [m for m in sample.present() if m not in loaded.model.modalities]
    proba = loaded.model.predict_proba([sample])[0]
    ranking = sorted(zip(loaded.model.classes, proba.tolist(), strict=False), key=lambda kv: -kv[1])
    if args.json:
        _print_json(
            {
                "checkpoint": str(loaded.path),
                "fusion": loaded.card["fusion"],
                "used_modalities": [m for m in sample.present() if m in loaded.model.modalities],
                "ignored_modalities": ignored,
                "prediction": ranking[0][0],
                "probabilities": dict(zip(loaded.model.classes, proba.tolist(), strict=False)),
            }
        )
        return 0
    if ignored:
        print(f"note: this checkpoint does not use {', '.join(ignored)}; ignored.", file=sys.stderr)
    print(f"{loaded.name} ({loaded.card['fusion']}): predicted {ranking[0][0]!r}")
    for cls, p in ranking[: args.top]:
        print(f"  {cls:<12} {p:6.3f}  {'#' * int(round(p * 40))}")
    return 0


# ---------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.data import load_dataset
    from core.evaluate import EvaluationOptions, evaluate
    from core.report import write_html_report

    if args.bootstrap < 0:
        raise UsageError("--bootstrap must be 0 (no intervals) or a positive number of resamples.")
    dataset = load_dataset(args.data)
    options = EvaluationOptions(bootstrap=args.bootstrap, seed=args.seed, robustness=not args.no_robustness)
    report = evaluate(args.checkpoint, dataset, args.split, options, device=args.device, progress=lambda msg: print(msg, file=sys.stderr))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json()), encoding="utf-8")
    if args.html:
        write_html_report(report, args.html)
    print(f"{'checkpoint':<16} {'accuracy':>26} {'macro F1':>9} {'ROC AUC':>8}")
    for result in report.checkpoints:
        acc = result.intervals.get("accuracy")
        ci = f" [{acc.low:.3f}, {acc.high:.3f}]" if acc is not None and acc.low is not None else ""
        values = result.metrics.values
        auc = f"{values['roc_auc_macro']:.3f}" if values.get("roc_auc_macro") is not None else "-"
        print(f"{result.name:<16} {values['accuracy']:>10.3f}{ci:<16} {values['f1_macro']:>9.3f} {auc:>8}")
    print(f"{len(report.checkpoints)} checkpoint(s) on {report.split} in {report.seconds:.1f} s", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- explain
def cmd_explain(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from core.checkpoints import load_checkpoint
    from core.device import pick_device
    from core.explain import ExplainParams, explain
    from core.figures.explanation import explanation_png

    params = ExplainParams(seed=args.seed)
    if args.samples is not None:
        params = replace(params, lime_samples=args.samples, shap_evals=args.samples)
    if args.segments is not None:
        params = replace(params, image_segments=args.segments)
    params = replace(params, shap_algorithm=args.shap_algorithm)
    if args.data:
        return _explain_split(args, params)
    sample = load_cli_sample(args.image, args.text, args.audio)
    loaded = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    result = explain(loaded, sample, args.method, target=args.target, params=params)
    results = result if isinstance(result, dict) else {args.method: result}
    payload = {name: r.to_dict() for name, r in results.items()}
    if args.json:
        Path(args.json).write_text(json.dumps(payload if args.method == "all" else payload[args.method]))
    if args.png:
        Path(args.png).write_bytes(explanation_png(list(results.values()), sample.image))
    for name, r in results.items():
        totals = ", ".join(f"{m} {v:+.4f}" for m, v in r.modality_totals.items())
        print(f"{name}: class {r.target_name!r} (p={r.probabilities[r.target]:.3f}); {totals}; {r.metadata['runtime_s']:.2f} s")
    return 0


def _explain_split(args: argparse.Namespace, params) -> int:
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


# ---------------------------------------------------------------- bench
def cmd_bench(args: argparse.Namespace) -> int:
    from core.benchmarks import run_sections

    options = {k: v for k, v in (("data", args.data), ("checkpoints", args.checkpoints), ("device", args.device)) if v}
    if args.quick:
        options["quick"] = True
    report = run_sections(args.sections, options, log=lambda msg: print(msg, file=sys.stderr))
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
        print(f"wrote {args.json}", file=sys.stderr)
    else:
        print(text)
    failed = [n for n, r in report["sections"].items() if not r["ok"]]
    if failed:
        print(f"error: benchmark section(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Multimodal fusion: build, train, evaluate, explain.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="build the embedded demo dataset and its checkpoints (skips what exists)")
    p.add_argument("--out", default=str(default_demo_dir()), help="dataset folder (default: demo_data/)")
    p.add_argument("--checkpoints", default=None, help="checkpoint folder (default: checkpoints/ or $FUSION_CHECKPOINTS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-only", action="store_true", help="build the dataset but train nothing")
    p.add_argument("--force", action="store_true", help="rebuild and retrain even if up to date")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("validate", help="check a dataset folder and list every bad row")
    p.add_argument("--data", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("train", help="train fusion strategies and unimodal baselines")
    p.add_argument("--data", required=True, help="dataset folder with manifest.csv or manifest.jsonl")
    p.add_argument("--fusion", default="all", help="all | baselines | comma list of early,late,gated,attention,tensor,lowrank,<modality>-only")
    p.add_argument("--out", default="checkpoints", help="checkpoint folder")
    p.add_argument("--encoders", default=None, help="e.g. image=efficientnet-lite0,text=minilm,audio=builtin")
    for modality in ("image", "text", "audio"):
        p.add_argument(f"--{modality}-encoder", default=None, help=f"encoder for {modality} (builtin, pretrained name, or hf:<name-or-dir>)")
    p.add_argument("--epochs", type=int, default=60, help="max epochs of each fusion head")
    p.add_argument("--encoder-epochs", type=int, default=30, help="max epochs of each built-in encoder")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs")
    p.add_argument("--modality-dropout", type=float, default=0.3, help="probability of hiding each modality per training sample")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout inside the fusion modules")
    p.add_argument("--resume", action="store_true", help="keep complete checkpoints and continue interrupted ones from their last epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    p.add_argument("--skip-invalid", action="store_true", help="train on the valid rows of a dataset with errors")
    p.add_argument("--no-cache", action="store_true", help="do not use the on-disk embedding cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--events", default=None, help="append progress events as JSON lines to this file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("checkpoints", help="list checkpoints")
    csub = p.add_subparsers(dest="action", required=True)
    q = csub.add_parser("list", help="path, fusion, modalities and accuracy of each checkpoint")
    q.add_argument("--dir", default=None, help="checkpoint folder (default: checkpoints/)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_checkpoints)

    p = sub.add_parser("predict", help="class probabilities for one sample")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image")
    p.add_argument("--text")
    p.add_argument("--audio")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="metrics, curves, robustness and cost of checkpoints on a split")
    p.add_argument("--checkpoint", action="append", required=True, help="checkpoint folder (repeat to compare)")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--json", default=None, help="write every result to this JSON file")
    p.add_argument("--html", default=None, help="write a self-contained HTML report")
    p.add_argument("--no-robustness", action="store_true", help="skip missing-modality, corruption and reliance analyses")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for confidence intervals (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("explain", help="modality Shapley, SHAP and LIME attributions for one sample")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image")
    p.add_argument("--text")
    p.add_argument("--audio")
    p.add_argument("--method", default="all", choices=["modality", "shap", "lime", "all"])
    p.add_argument("--target", default=None, help="class name or index to explain (default: the predicted class)")
    p.add_argument("--samples", type=int, default=None, help="LIME samples per modality and SHAP evaluations")
    p.add_argument("--segments", type=int, default=None, help="image superpixels")
    p.add_argument(
        "--shap-algorithm",
        default="partition",
        choices=["partition", "permutation"],
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
    p = sub.add_parser("bench", help="benchmarks measured side by side in one run (JSON out)")
    p.add_argument("sections", nargs="*", default=["all"], help="all, encode, predict, train, evaluate, explain, reliability, dashboard")
    p.add_argument("--json", default=None, help="write the report here (default: print it)")
    p.add_argument("--data", default=None, help="dataset folder (default: the demo)")
    p.add_argument("--checkpoints", default=None, help="checkpoint folder (default: checkpoints/)")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, for smoke tests")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    from core.checkpoints import CheckpointError
    from core.encoders import EncoderLoadError
    from core.io import InputError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, CheckpointError, EncoderLoadError, UsageError, ValueError) as err:
        if os.environ.get("FUSION_DEBUG"):
            raise  # the full traceback, for bug reports
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
