"""Turn a ``python -m bench`` JSON report into the README's performance tables.

``python -m bench.table bench.json`` prints the markdown. Every section in the
report gets a table (sections without a dedicated layout list their scalar figures);
failed and skipped sections say so instead of showing numbers.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (thousands separated), or an en dash if missing."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if value == 0:
            return "0"
        text = f"{value:,.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"
        return text
    return str(value)


def _ratio(value: Any) -> str:
    return "–" if value is None else f"{_num(value)}×"


def _rows(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _encode(section: dict[str, Any]) -> str:
    rows = []
    for name, result in section.get("encoders", {}).items():
        forward = result["forward"]
        best = forward["best"]
        rows.append(
            [
                f"`{name}`",
                _num(result["prepare"]["samples_per_s"]),
                _num(forward["batch_1"]["samples_per_s"]),
                f"{_num(best['samples_per_s'])} @ {best['batch_size']}",
                _ratio(forward["best_over_batch_1"]),
            ]
        )
    text = _rows(
        [
            "Encoder",
            "Prepare (samples/s)",
            "Forward, batch 1 (samples/s)",
            "Forward, best (samples/s @ batch)",
            "Best / batch 1",
        ],
        rows,
    )
    skipped = section.get("skipped") or {}
    if skipped:
        text += "\n\nSkipped: " + "; ".join(f"`{name}` ({reason})" for name, reason in skipped.items())
    return text


def _predict(section: dict[str, Any]) -> str:
    rows = []
    for name, result in section.get("checkpoints", {}).items():
        latency = result["upload_latency"]
        split = result["split_throughput"]
        phases = " / ".join(_num(latency[p]["median_ms"]) for p in ("decode", "prepare", "encode", "fuse"))
        rows.append(
            [
                f"`{name}`",
                f"{_num(latency['total']['median_ms'])} / {_num(latency['total']['p95_ms'])}",
                phases,
                _num(split["samples_per_s"]),
                _ratio(split["over_floor"]),
            ]
        )
    upload = section.get("upload", {})
    note = (
        f"One upload ({' + '.join(upload.get('modalities', []))}, {upload.get('repeats', '?')} repeats) and the whole "
        f"{section.get('split', 'test')} split; floor = Σ N_m / encoder forward throughput (best batch), "
        "so the ratio is what preprocessing, batching and fusion add to the encoders' own work."
    )
    table = _rows(
        [
            "Checkpoint",
            "Upload latency median / p95 (ms)",
            "decode / prepare / encode / fuse (ms)",
            "Split (samples/s)",
            "Time / encoder floor",
        ],
        rows,
    )
    return f"{note}\n\n{table}"


def _train(section: dict[str, Any]) -> str:
    head = section.get("fusion_head", {})
    head_table = _rows(
        [
            "Fusion head",
            "Samples",
            "Embed once (s)",
            "Cached epoch (s)",
            "Re-encode epoch (s)",
            "Re-encode / cached",
            f"Speed-up over {head.get('full_run_epochs', '?')} epochs",
        ],
        [
            [
                f"`{head.get('fusion', '?')}`",
                _num(head.get("samples")),
                _num(head.get("embed_once_s")),
                _num(head.get("cached_epoch_s")),
                _num(head.get("reencode_epoch_s")),
                _ratio(head.get("reencode_over_cached")),
                _ratio(head.get("speedup_full_run")),
            ]
        ],
    )
    stage1_rows = [
        [
            f"`{m}/builtin`",
            _num(r["samples"]),
            _num(r["parameters"]),
            _num(r["prepare_once_s"]),
            _num(r["epoch_s"]),
            _num(r["samples_per_s"]),
        ]
        for m, r in section.get("encoder_stage1", {}).items()
    ]
    stage1_table = _rows(
        ["Stage-1 encoder", "Samples", "Parameters", "Prepare once (s)", "Epoch (s)", "Samples/s"], stage1_rows
    )
    return f"{head_table}\n\n{stage1_table}"


def _dashboard(section: dict[str, Any]) -> str:
    cold = section.get("cold_start", {})
    switch = section.get("page_switch", {})
    memory = section.get("memory", {})
    rows = [
        ["Cold start: server healthy (s)", _num(cold.get("healthy_s"))],
        [f"Cold start: {cold.get('page', 'first')} page rendered (s)", _num(cold.get("first_page_s"))],
        [
            "Warm page switch, median / max (s)",
            f"{_num(switch.get('warm_median_s'))} / {_num(switch.get('warm_max_s'))}",
        ],
    ]
    rows += [[f"Warm switch to {page} (s)", _num(s)] for page, s in switch.get("warm_s", {}).items()]
    rows += [[f"First visit of {page} (s)", _num(s)] for page, s in switch.get("first_visit_s", {}).items()]
    rows += [
        [
            f"Server peak RSS, {section.get('checkpoints_selected', '?')} checkpoints loaded (MiB)",
            _num(memory.get("server_peak_rss_mib")),
        ],
        ["Server peak RSS after cold start (MiB)", _num(cold.get("peak_rss_mib"))],
        ["Child processes' peak RSS (MiB)", _num(memory.get("children_peak_rss_mib"))],
        ["Pages showing an exception", _num(sum(section.get("exceptions", {}).values()))],
    ]
    return _rows(["Dashboard", "Value"], rows)


def _load(section: dict[str, Any]) -> str:
    latency = section.get("latency_s", {})
    memory = section.get("memory", {})
    rows = [
        [
            "Sessions × rounds at most (each: upload, predict, explain)",
            f"{section.get('sessions')} × {section.get('rounds_per_session_max')}",
        ],
        ["Heavy jobs at once (FUSION_MAX_JOBS)", _num(section.get("max_jobs"))],
        ["Rounds finished", _num(section.get("rounds"))],
        ["Errors", _num(section.get("errors"))],
        ["Sessions that finished no round", _num(section.get("starved_sessions"))],
    ]
    for name in ("predict", "explain", "round"):
        figures = latency.get(name, {})
        rows.append(
            [
                f"{name.capitalize()} latency p50 / p95 / max (s)",
                f"{_num(figures.get('p50'))} / {_num(figures.get('p95'))} / {_num(figures.get('max'))}",
            ]
        )
    rows += [
        ["Server peak RSS (MiB)", _num(memory.get("server_peak_rss_mib"))],
        ["Server RSS after start-up (MiB)", _num(memory.get("server_rss_after_start_mib"))],
        ["Wall time (s)", _num(section.get("elapsed_s"))],
    ]
    return _rows(["Load", "Value"], rows)


def _evaluate(section: dict[str, Any]) -> str:
    seconds = section.get("timings_s", {})
    rows = [
        ["Checkpoints × rows", f"{len(section.get('checkpoints', []))} × {_num(section.get('rows'))}"],
        ["Bootstrap resamples", _num(section.get("bootstrap"))],
        ["Embedding cache", str(section.get("embedding_cache", "?"))],
        ["Total (s)", _num(seconds.get("total"))],
        ["Within target", f"{_num(section.get('within_target'))} (target {_num(section.get('target_seconds'))} s)"],
    ]
    rows += [[f"Evaluate `{name}` (s)", _num(s)] for name, s in seconds.get("per_checkpoint", {}).items()]
    return _rows(["Full evaluation", "Value"], rows)


def _explain(section: dict[str, Any]) -> str:
    rows = []
    for method in ("lime_image", "lime_text", "lime_audio", "shap_image", "shap_image_permutation"):
        if method in section:
            r = section[method]
            name = f"{method} ({r['algorithm']}, {r['evaluations']} evals)" if "algorithm" in r else method
            rows.append(
                [name, _num(r["naive_s"]), _num(r["ours_s"]), _ratio(r["speedup"]), _ratio(r["ours_over_floor"])]
            )
    table = _rows(["Explanation", "Naive (s)", "Engine (s)", "Speed-up", "Engine / encoder floor"], rows)
    shapley = section.get("modality_shapley")
    if shapley:
        table += (
            f"\n\nModality Shapley: {_num(shapley['ours_median_ms'])} ms median "
            f"({_num(shapley['ours_p95_ms'])} ms p95) vs {_num(shapley['naive_ms'])} ms naive."
        )
    for part in (_method_times, _ig_completeness, _method_ranking):
        text = part(section)
        if text:
            table += "\n\n" + text
    return table


def _method_times(section: dict[str, Any]) -> str:
    methods = section.get("methods", {})
    rows = []
    for r in methods.values():
        timing = ("label", "median_s", "min_s", "cpu_s", "threads")
        setting = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r.items() if k not in timing)
        rows.append([r["label"], _num(r["median_s"]), _num(r.get("cpu_s")), setting or "–", str(r["threads"])])
    header = ["Method (one sample, attributions only)", "Median wall (s)", "CPU (s)", "Settings", "Threads"]
    return _rows(header, rows) if rows else ""


def _ig_completeness(section: dict[str, Any]) -> str:
    rows = [
        [
            f"`{name}`",
            str(r["samples"]),
            _num(r["median_relative_delta"]),
            _num(r["max_relative_delta"]),
            f"{r['complete_share']:.0%}",
            _num(r["median_s"]),
            f"{r['adaptive_complete_share']:.0%}",
            _num(r["adaptive_mean_steps"]),
            _num(r["adaptive_mean_s"]),
        ]
        for name, r in section.get("ig_completeness", {}).items()
    ]
    if not rows:
        return ""
    steps = next(iter(section["ig_completeness"].values()))["steps"]
    header = [
        "IG completeness",
        "Samples",
        f"Median abs(delta) / abs(f(x) - f(b)), {steps} steps",
        "Max",
        "Within 5%",
        "Median (s)",
        "Within 5%, steps doubled",
        "Mean steps",
        "Mean (s)",
    ]
    return _rows(header, rows)


def _method_ranking(section: dict[str, Any]) -> str:
    ranking = section.get("ranking")
    if not ranking:
        return ""
    methods = ranking["methods"]
    rows = []
    for modality, names in sorted(ranking["ranking"].items()):
        for position, name in enumerate(names, start=1):
            m, s = methods[name], methods[name]["modalities"][modality]
            verdicts = [
                "–" if s[f"{test}_randomisation_passed"] is None else ("pass" if s[f"{test}_randomisation_passed"] else "FAIL")
                for test in ("model", "data")
            ]
            rows.append(
                [
                    modality if position == 1 else "",
                    f"{position}. {m['label']}",
                    _num((s["random_deletion_auc"] or 0) - (s["deletion_auc"] or 0), 2),
                    _num((s["insertion_auc"] or 0) - (s["random_insertion_auc"] or 0), 2),
                    f"{verdicts[0]} ({_num(s['model_randomisation'], 2)})",
                    f"{verdicts[1]} ({_num(s['data_randomisation'], 2)})",
                    _num(s["max_sensitivity"], 2),
                    "–" if s["seed_sign_flips"] is None else f"{s['seed_sign_flips']:.0%}",
                    _num(m["seconds_per_explanation"]),
                ]
            )
    header = [
        "Modality",
        f"Method (checkpoint `{ranking['checkpoint']}`, {len(ranking['rows'])} rows)",
        "Deletion gain",
        "Insertion gain",
        "Model randomisation (ρ)",
        "Data randomisation (ρ)",
        "Max-sensitivity",
        "Sign flips across seeds",
        "s / explanation",
    ]
    return _rows(header, rows)


def _scalars(value: Any, prefix: str = "", depth: int = 3) -> list[list[str]]:
    """``[path, value]`` rows of every number, boolean or short string in a nested dict."""
    if isinstance(value, dict) and depth > 0:
        rows: list[list[str]] = []
        for key, inner in value.items():
            if key not in ("traceback", "versions", "device", "section"):
                rows += _scalars(inner, f"{prefix}.{key}" if prefix else str(key), depth - 1)
        return rows
    if isinstance(value, (int, float, bool)) or (isinstance(value, str) and len(value) <= 80):
        return [[f"`{prefix}`", _num(value)]]
    return []


LAYOUTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "encode": _encode,
    "predict": _predict,
    "train": _train,
    "dashboard": _dashboard,
    "load": _load,
    "evaluate": _evaluate,
    "explain": _explain,
}


def _layout(name: str) -> Callable[[dict[str, Any]], str] | None:
    """The layout of a section: one above, or the ``table(section)`` its own module defines."""
    if name in LAYOUTS:
        return LAYOUTS[name]
    try:
        module = importlib.import_module(f"bench.{name}")
    except ImportError:
        return None
    return getattr(module, "table", None)


def markdown_table(report: dict[str, Any]) -> str:
    """Markdown for every section of a ``python -m bench`` report, environment first."""
    env = report.get("environment", {})
    parts = [
        f"Measured on {env.get('device', '?')} · torch {env.get('torch', '?')} · "
        f"{env.get('cpu_threads', '?')} CPU threads · {env.get('date', '?')}. "
        "Ratios compare figures taken side by side in one run; absolute times hold for this device only."
    ]
    for name, section in report.get("sections", {}).items():
        heading = f"### {name} ({_num(section.get('seconds'))} s)"
        if not section.get("ok", True):
            parts.append(f"{heading}\n\nFailed: {section.get('error', 'unknown error')}")
        elif isinstance(section.get("skipped"), str):
            parts.append(f"{heading}\n\nSkipped: {section['skipped']}")
        elif _layout(name) is not None:
            parts.append(f"{heading}\n\n{_layout(name)(section)}")
        else:
            rows = _scalars({k: v for k, v in section.items() if k not in ("ok", "seconds")})
            parts.append(f"{heading}\n\n{_rows(['Figure', 'Value'], rows)}")
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.table", description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="JSON written by `python -m bench --json`")
    args = parser.parse_args(argv)
    print(markdown_table(json.loads(args.report.read_text(encoding="utf-8"))), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
