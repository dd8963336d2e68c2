"""`dual-denoising` command handlers: run_make_synthetic (the parsers are in `cli.py`)."""

from __future__ import annotations

import argparse
import time

from ..synth.synthshapes import save_synthshapes


def run_make_synthetic(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.quiet:  # no bar at all, the parquet writer's included
        import datasets

        datasets.disable_progress_bars()
    if args.scan is not None:
        from ..synth.scan import save_synthshapes_scan

        out_dir, metadata = save_synthshapes_scan(
            args.out, args.scan, shapes_per_class=args.shapes_per_class, seed=args.seed, num_points=args.num_points,
            classes=_class_list(args.classes), test_fraction=args.test_fraction, overwrite=args.overwrite,
            preview=args.preview, progress=not args.quiet,
        )
        splits = ", ".join(f"{n} {split}" for split, n in metadata["splits"].items())
        print(f"wrote SynthShapes-Scan ({args.scan}: {len(metadata['classes'])} classes, {splits} scans of "
              f"{metadata['num_points']} points) to {out_dir} in {time.perf_counter() - start:.0f} s"
              + (f"; preview: {args.preview}" if args.preview else ""))
        return 0
    out_dir, metadata = save_synthshapes(
        args.out,
        shapes_per_class=args.shapes_per_class,
        views=args.views,
        seed=args.seed,
        num_points=args.num_points,
        image_size=args.image_size,
        classes=_class_list(args.classes),
        test_fraction=args.test_fraction,
        unseen_classes=_class_list(args.unseen_classes),
        overwrite=args.overwrite,
        preview=args.preview,
        progress=not args.quiet,
    )
    splits = ", ".join(f"{n} {split}" for split, n in metadata["splits"].items())
    print(
        f"wrote SynthShapes ({len(metadata['classes'])} classes, {splits} shapes, {metadata['views']} views of "
        f"{metadata['image_size']} px, {metadata['num_points']} points) to {out_dir} "
        f"in {time.perf_counter() - start:.0f} s"
        + (f"; preview: {args.preview}" if args.preview else "")
    )
    return 0


def _class_list(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]
