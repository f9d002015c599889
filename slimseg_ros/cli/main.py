"""The ``slimseg`` command: thin argparse subcommands over the library.

Each subcommand lives in its own module exposing ``register(subparsers)`` (adds its parser and
sets ``func``) so ``--help`` stays fast: heavy imports (torch, rclpy) happen inside ``run``.
Errors the user can fix (bad paths, bad values) end as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

__all__ = ["main", "build_parser", "SUBCOMMANDS", "UserError"]

# module name under slimseg_ros.cli, in the order shown by --help
SUBCOMMANDS: tuple[str, ...] = (
    "train", "eval", "recalibrate", "adapt", "export", "bench", "profile", "bag", "demo",
)


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slimseg",
        description="Slimmable semantic segmentation: train, evaluate, export, benchmark, "
        "evaluate rosbags, and run the CPU demo.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"slimseg_ros.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("slimseg: interrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, FileNotFoundError, NotADirectoryError) as exc:
        # ValueError is what the library raises for bad user input, always with one clear line
        print(f"slimseg {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
