"""Train the small CLIP teacher on SynthShapes and report its zero-shot accuracy on the held-out renders.

    python examples/train_teacher.py --dataset /tmp/synthshapes --output /tmp/teacher
    accelerate launch examples/train_teacher.py --dataset /tmp/synthshapes --output /tmp/teacher
    torchrun --nproc_per_node 2 examples/train_teacher.py --dataset /tmp/synthshapes --output /tmp/teacher

A `--dataset` folder that does not exist yet is generated first with SynthShapes' defaults. Every field of
`TeacherConfig` is a flag (`--epochs 40 --vision-hidden-size 192 ...`). The example caps the training loop at 780 s
(`--max-train-seconds`, 0 for no cap): on a busy machine the run then ends on time with its learning rate annealed,
after fewer epochs (the metrics file says how many); on an idle 2-core machine the 25 epochs take about 9 minutes.
The output folder loads like any CLIP:
`CLIPModel.from_pretrained(out)`, `CLIPProcessor.from_pretrained(out)`; `out/teacher_metrics.json` holds the zero-shot
top-1 (overall, per class, per shape), the training time and the machine load. Then:

    dual-denoising precompute-features --teacher /tmp/teacher --dataset /tmp/synthshapes
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

START = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dual_denoising.distributed import make_accelerator  # noqa: E402
from dual_denoising.prompts import DEFAULT_TEMPLATES  # noqa: E402
from dual_denoising.teacher import TeacherConfig, check_teacher_folder, train_teacher  # noqa: E402

EXAMPLE_MAX_TRAIN_SECONDS = 780.0


def parse_args() -> tuple[argparse.Namespace, TeacherConfig]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, type=Path, help="SynthShapes (or any triples) folder")
    parser.add_argument("--output", required=True, type=Path, help="where the teacher is saved")
    parser.add_argument("--templates", nargs="+", default=DEFAULT_TEMPLATES, help="zero-shot prompt templates")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a teacher an earlier run saved in --output (a folder holding anything else is "
                             "refused)")
    # the example caps the training loop at 13 minutes, so that loading, training and evaluation fit in 15 on a
    # shared 2-core machine: the schedule then anneals on time (see TeacherConfig.max_train_seconds); 0 lifts the cap
    defaults = dataclasses.replace(TeacherConfig(), max_train_seconds=EXAMPLE_MAX_TRAIN_SECONDS)
    group = parser.add_argument_group("TeacherConfig")
    for f in dataclasses.fields(TeacherConfig):
        default = getattr(defaults, f.name)
        kind = float if f.name == "max_train_seconds" else type(default)
        group.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default, help=f"(default: {default})")
    args = parser.parse_args()
    if not args.max_train_seconds:
        args.max_train_seconds = None
    config = TeacherConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TeacherConfig)})
    return args, config


def main() -> None:
    args, config = parse_args()
    try:  # before the dataset is generated
        check_teacher_folder(args.output, args.dataset, args.overwrite)
    except (FileExistsError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    accelerator = make_accelerator(mixed_precision=config.mixed_precision)
    if not (args.dataset / "data").is_dir():
        if accelerator.is_main_process:
            from dual_denoising.synth import DEFAULT_SHAPES_PER_CLASS, DEFAULT_VIEWS, save_synthshapes

            t0 = time.perf_counter()
            print(f"generating SynthShapes ({DEFAULT_SHAPES_PER_CLASS} shapes/class, {DEFAULT_VIEWS} views) "
                  f"in {args.dataset}")
            save_synthshapes(
                args.dataset, DEFAULT_SHAPES_PER_CLASS, DEFAULT_VIEWS, seed=0, progress=not args.no_progress
            )
            print(f"  done in {time.perf_counter() - t0:.0f} s")
        accelerator.wait_for_everyone()

    metrics = train_teacher(
        args.dataset, args.output, config, templates=args.templates, accelerator=accelerator,
        show_progress=not args.no_progress, overwrite=args.overwrite,
    )
    if accelerator.is_main_process:
        per_class = sorted(metrics["zero_shot_per_class"].items(), key=lambda kv: kv[1])
        print(f"\nteacher saved to {args.output}")
        print(
            f"zero-shot top-1 on {metrics['num_test_views']} test views of {len(metrics['classes'])} classes: "
            f"{100 * metrics['zero_shot_top1']:.1f}%  "
            f"(per shape, views averaged: {100 * metrics['zero_shot_shape_top1']:.1f}%)"
        )
        print(f"training {metrics['train_seconds']:.0f} s ({metrics['epochs_completed']:.1f} epochs), "
              f"train_teacher {metrics['total_seconds']:.0f} s, whole script {time.perf_counter() - START:.0f} s, "
              f"load average {metrics['load_average_1m_5m_15m']}")
        print("per class, weakest first:")
        for name, acc in per_class:
            print(f"  {name:<16} {100 * acc:5.1f}%")


if __name__ == "__main__":
    main()
