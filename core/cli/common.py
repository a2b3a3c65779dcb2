"""What several commands share: sample arguments, JSON printing, the checkpoint table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.errors import UsageError
from core.io import decode_sample, read_file
from core.sample import DecodedSample, Sample


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """``--image FILE --text TEXT --audio FILE``: one sample, any subset of modalities."""
    parser.add_argument("--image", help="image file (PNG, JPEG, BMP, WebP, GIF)")
    parser.add_argument("--text", help="the text itself")
    parser.add_argument("--audio", help="audio file (WAV, FLAC, OGG, MP3)")


def sample_from_arguments(args: argparse.Namespace) -> DecodedSample:
    """The sample given by ``--image/--text/--audio``, decoded by :func:`core.io.decode_sample`."""
    if not (args.image or args.text or args.audio):
        raise UsageError("Give at least one of --image, --text, --audio.")
    raw = Sample(
        image=read_file(args.image) if args.image else None,
        text=args.text,
        audio=read_file(args.audio) if args.audio else None,
    )
    return decode_sample(raw)


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))


def print_checkpoint_table(root: Path) -> None:
    from core.card import list_checkpoints

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
