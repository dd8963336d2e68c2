"""`dual-denoising` command handlers: run_import (the parsers are in `cli.py`)."""

from __future__ import annotations

import argparse
from typing import Any

from ..data.common import ULIP_VIEW_ANGLES
from ..data.folder import import_folder
from ..data.importers import import_modelnet40_h5, import_modelnet40_normal, import_scanobjectnn
from ..data.shapenet import import_shapenet55_ulip
from ..data.triples import load_triples_metadata


def run_import(args: argparse.Namespace) -> int:
    """`dual-denoising import FORMAT SRC --out DIR ...` (the parsers are in `dual_denoising.cli`)."""
    common = _common_kwargs(args)
    if args.import_format == "modelnet40-h5":
        out = import_modelnet40_h5(args.src, args.out, **common)
    elif args.import_format == "modelnet40-normal":
        out = import_modelnet40_normal(args.src, args.out, num_categories=args.num_categories, **common)
    elif args.import_format == "scanobjectnn":
        out = import_scanobjectnn(args.src, args.out, variant=args.variant, **common)
    elif args.import_format == "shapenet55-ulip":
        out = import_shapenet55_ulip(
            args.src, args.out, pc_dir=args.pc_dir, split_dir=args.split_dir, taxonomy=args.taxonomy,
            image_dir=args.image_dir, with_images=not args.no_images, view_angles=args.view_angles or ULIP_VIEW_ANGLES,
            include_depth=args.include_depth, whole=args.whole, on_missing="skip" if args.skip_missing else "error",
            **common,
        )
    elif args.import_format == "folder":
        out = import_folder(args.src, args.out, mesh_samples=args.mesh_samples, **common)
    else:
        raise ValueError(f"unknown import format {args.import_format!r}")
    meta = load_triples_metadata(out)
    splits = meta.get("splits", {})
    detail = ", ".join(f"{split}: {count}" for split, count in splits.items())
    print(f"wrote {sum(splits.values())} shapes ({detail}) of {len(meta.get('class_names', []))} classes to {out}")
    return 0


def _common_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(num_points=args.num_points, sample_method=args.sample_method, seed=args.seed,
                overwrite=args.overwrite, progress=not args.no_progress)
