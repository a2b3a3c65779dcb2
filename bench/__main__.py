"""``python -m bench [section ...] --json out.json``: every benchmark, measured side by side in one run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.settings import configure_process


def main(argv: list[str] | None = None) -> int:
    from bench import SECTIONS, run_sections

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("sections", nargs="*", default=["all"], help=f"all, {', '.join(SECTIONS)}")
    parser.add_argument("--json", default=None, help="write the report here (default: print it)")
    parser.add_argument("--data", default=None, help="dataset folder (default: the demo)")
    parser.add_argument("--checkpoints", default=None, help="checkpoint folder (default: checkpoints/)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, for smoke tests")
    parser.add_argument("--sessions", type=int, default=None, help="load: simultaneous browser sessions (default 20)")
    parser.add_argument("--rounds", type=int, default=None, help="load: rounds per session at most (default 2)")
    parser.add_argument("--seconds", type=float, default=None, help="load: no new round after this (default 300)")
    parser.add_argument("--max-jobs", type=int, default=None, help="load: the server's FUSION_MAX_JOBS")
    parser.add_argument("--sizes", default=None, help="scale: comma list of dataset sizes (default 10000,30000,100000)")
    parser.add_argument("--no-browser", action="store_true", help="scale: skip the dashboard page loads")
    parser.add_argument("--rows", type=int, default=None, help="explore: rows of the synthetic dataset (default 30000)")
    args = parser.parse_args(argv)
    given = {
        "data": args.data,
        "checkpoints": args.checkpoints,
        "device": args.device,
        "sessions": args.sessions,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "max_jobs": args.max_jobs,
        "rows": args.rows,
    }
    options = {k: v for k, v in given.items() if v}
    if args.sizes:
        options["sizes"] = [int(n) for n in args.sizes.split(",") if n.strip()]
    if args.no_browser:
        options["dashboard"] = False
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
    failed = [name for name, section in report["sections"].items() if not section["ok"]]
    if failed:
        print(f"error: benchmark section(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    configure_process()
    sys.exit(main())
