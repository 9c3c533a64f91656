"""Argument types and flags the CLI's commands share."""

from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def sequence_flags(p: argparse.ArgumentParser) -> None:
    """What the commands that train sequence models (``evaluate``, ``predict``, ``simulate``)
    pass to them."""
    p.add_argument("--epochs", type=positive_int, default=20,
                   help="gru4rec, sasrec, sqn: training epochs (default 20)")
    p.add_argument("--dim", type=positive_int, default=64,
                   help="gru4rec, sasrec, sqn: embedding size (default 64)")
