"""The `dual-denoising` command line.

Each subcommand lives in the module that does the work: a module listed in `COMMAND_MODULES` exposes
`register_cli(subparsers)`, which adds its parser(s) and sets `func` to a callable taking the parsed arguments.
Errors a user can fix (missing files, bad input) are printed as one line with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

COMMAND_MODULES: list[str] = [
    "dual_denoising.inference",
    "dual_denoising.evaluation",
    "dual_denoising.data.importers",
    "dual_denoising.synth.synthshapes",
    "dual_denoising.teacher.features",
    "dual_denoising.training.arguments",
    "dual_denoising.app",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dual-denoising",
        description="Robust zero-shot 3D point-cloud classification with Dual Denoising models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # weight-loading bars are noise on a command line
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, OSError) as err:
        print(f"dual-denoising {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
