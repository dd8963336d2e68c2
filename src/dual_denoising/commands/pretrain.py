"""`dual-denoising` command handlers: run_pretrain (the parsers are in `cli.py`)."""

from __future__ import annotations

import argparse
import logging

from ..training.arguments import parse_args


def run_pretrain(namespace: argparse.Namespace) -> int:
    """`dual-denoising pretrain`: the options are read again from the command line's words after `pretrain`, so a
    `--recipe` gives the defaults and the options given override them (as `parse_args` does)."""
    argv = namespace.argv[namespace.argv.index("pretrain") + 1:]
    args = parse_args(argv, prog="dual-denoising pretrain")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    from ..training.trainer import pretrain  # the trainer imports torch and accelerate; --help does not need them

    pretrain(args)
    return 0
