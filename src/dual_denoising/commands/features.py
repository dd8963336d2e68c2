"""`dual-denoising` command handlers: run_precompute_features (the parsers are in `cli.py`)."""

from __future__ import annotations

import argparse

from ..teacher.features import precompute_features


def run_precompute_features(args: argparse.Namespace) -> int:
    record = precompute_features(args.dataset, args.teacher, batch_size=args.batch_size, overwrite=args.overwrite)
    if record["reused"]:
        print(f"{args.dataset}: teacher features from {args.teacher} are already there (pass --overwrite to recompute)")
    else:
        print(f"{args.dataset}: wrote image_embeds/text_embeds (D={record['embed_dim']}) from {args.teacher}")
    return 0
