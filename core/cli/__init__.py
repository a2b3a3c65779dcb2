"""``python -m core <command>``: the batch jobs, calling the same functions as the dashboard.

One module per group of commands, each adding its sub-commands to the parser. Every
user-facing failure (:class:`~core.errors.FusionError`) is printed as ``error: <one line>``
(with its details below, when it has some) and exit code 2; anything else is a bug and
says so (exit code 1), with the traceback when ``FUSION_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from core.cli import compress, data, evaluate, explain, explore, models, train
from core.errors import FusionError, user_message
from core.settings import settings

GROUPS = (data, train, compress, models, evaluate, explain, explore)
"""Modules adding commands, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core", description="Multimodal fusion: build, train, evaluate, explain."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def report_error(err: BaseException) -> int:
    """Print ``err`` the way the CLI does and return the exit code (2: the user's, 1: a bug)."""
    if isinstance(err, FusionError):
        print(f"error: {user_message(err)}", file=sys.stderr)
        if err.details:
            print(err.details, file=sys.stderr)
        return 2
    print(
        f"error: internal error ({type(err).__name__}: {err}). This is a bug; "
        "run again with FUSION_DEBUG=1 to see the traceback, and report it.",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every failure ends as one line; FUSION_DEBUG shows the rest
        if settings().debug:
            traceback.print_exc()
        return report_error(err)
