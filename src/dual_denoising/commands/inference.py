"""`dual-denoising` command handlers: run_classify, run_embed, run_classes, run_models (the parsers are in `cli.py`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..fileio import load_points
from ..inference import embed_point_clouds
from ..pipeline_dual_denoising import SEARCHED_UP_AXES, TASK, default_up_axis, prepare_point_cloud
from ..prompts import normalize_labels
from ..shipped import DEFAULT_MODEL_DIR, load_model_and_tokenizer


def run_classify(args: argparse.Namespace) -> int:
    from transformers import pipeline

    _check_counts(args)
    args.model = args.model or str(DEFAULT_MODEL_DIR)  # no --model: the shipped default
    # the CLI takes labels as words or comma-separated lists: both are split on commas, as a Python string is
    labels = normalize_labels(",".join(args.labels), name="--labels")
    paths = _check_files(args.files)
    progress = _show_progress(args)
    clouds = _load_files(paths, progress)  # bad files fail here, before the model is loaded
    model, tokenizer = load_model_and_tokenizer(args.model)
    _check_feature_options(model, args)
    if model.text_model is None:
        raise ValueError(f"{args.model}: the model has no text tower, so the labels cannot be embedded; build it "
                         "with DualDenoisingModel.from_teacher(TEACHER), which copies the teacher's, and save it again")
    if tokenizer is None:
        raise ValueError(f"{args.model}: no tokenizer files in the folder (DualDenoisingModel.save_pretrained writes "
                         "the model only), so the labels cannot be embedded; save the teacher's tokenizer there: "
                         "AutoTokenizer.from_pretrained(TEACHER).save_pretrained(FOLDER)")
    config = model.config.point_config
    up_axis = args.up_axis or default_up_axis(model)
    clouds = [  # model-ready, so that a cloud the model cannot take is named by its file
        prepare_point_cloud(c, config.num_points, max(config.group_size, config.num_groups), config.in_channels,
                            source=str(p), up_axis="y" if up_axis in SEARCHED_UP_AXES else up_axis)
        for p, c in zip(paths, clouds)
    ]
    classifier = pipeline(TASK, model=model, tokenizer=tokenizer)
    from tqdm.auto import tqdm

    results = []
    bar = tqdm(total=len(clouds), unit="cloud", desc="classifying", disable=not progress or len(clouds) < 2)
    for start in range(0, len(clouds), args.batch_size):
        chunk = clouds[start : start + args.batch_size]
        results += classifier(chunk, candidate_labels=labels, num_noise_samples=args.num_noise_samples,
                              num_inference_steps=args.num_inference_steps, batch_size=args.batch_size,
                              up_axis=up_axis if up_axis in SEARCHED_UP_AXES else "y")
        bar.update(len(chunk))
    bar.close()
    top = [result[: args.top_k] for result in results]
    if args.json:
        print(json.dumps({str(p): r for p, r in zip(paths, top)}, indent=2))
        return 0
    width = max(len(label) for label in labels)
    for path, ranking in zip(paths, top):
        print(path)
        for item in ranking:
            print(f"  {item['label']:<{width}}  {item['score']:.3f}")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    _check_counts(args)
    if args.up_axis in SEARCHED_UP_AXES:
        raise ValueError(f"--up-axis {args.up_axis} keeps the orientation the classification is surest of, and embed "
                         "has no labels to classify with; give the files' up axis (y, z or x)")
    args.up_axis = args.up_axis or "y"  # embed's default: the models' convention
    args.model = args.model or str(DEFAULT_MODEL_DIR)  # no --model: the shipped default
    out = Path(args.out)
    if out.suffix not in (".npy", ".parquet"):
        raise ValueError(f"--out must end in .npy or .parquet; got {out.name}")
    paths = _check_files(args.files)
    # what the command writes: the embeddings, and for .npy the row order beside them
    written = [out] + ([out.with_name(out.stem + ".rows.txt")] if out.suffix == ".npy" else [])
    inputs = {p.resolve() for p in paths}
    clash = [str(w) for w in written if w.resolve() in inputs]
    if clash:
        raise ValueError(f"{', '.join(clash)} is one of the input files; choose another --out so no input is replaced")
    existing = [str(w) for w in written if w.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{', '.join(existing)} exists; pass --overwrite to replace it, or choose another --out")
    progress = _show_progress(args)
    clouds = _load_files(paths, progress)
    model, _ = load_model_and_tokenizer(args.model)
    _check_feature_options(model, args)
    embeds = embed_point_clouds(
        model, clouds, args.batch_size, args.num_noise_samples, args.num_inference_steps, progress=progress,
        up_axis=args.up_axis,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, embeds)
        written[1].write_text("".join(f"{p}\n" for p in paths))
        print(f"wrote {embeds.shape} embeddings to {out} (row order in {written[1]})")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"path": [str(p) for p in paths],
                          "embedding": pa.array(list(embeds), type=pa.list_(pa.float32()))})
        pq.write_table(table, out)
        print(f"wrote {embeds.shape} embeddings to {out} (columns: path, embedding)")
    return 0


def _check_counts(args: argparse.Namespace) -> None:
    for flag in ("top_k", "num_noise_samples", "num_inference_steps", "batch_size"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1; got {value}")


def _check_feature_options(model, args: argparse.Namespace) -> None:
    given = [flag for flag, value in (("--num-noise-samples", args.num_noise_samples),
                                      ("--num-inference-steps", args.num_inference_steps)) if value is not None]
    if given and model.config.objective != "dual_denoising":
        raise ValueError(f"{' and '.join(given)} apply to Dual Denoising models; this model is the "
                         f"{model.config.objective} baseline, which samples no noise: leave them out")


# ----------------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------------
def _check_files(files: Sequence[str]) -> list[Path]:
    paths = [Path(f) for f in files]
    folders = [str(p) for p in paths if p.is_dir()]
    if folders:
        raise ValueError(f"{', '.join(folders)}: is a folder; pass the point or mesh files in it (e.g. {folders[0]}/*.ply)")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no such file: {', '.join(missing)}")
    return paths


def _load_files(paths: list[Path], progress: bool) -> list[np.ndarray]:
    from tqdm.auto import tqdm

    return [load_points(p) for p in tqdm(paths, unit="file", desc="reading", disable=not progress or len(paths) < 2)]


def _show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only for a person watching: not with --quiet, not when stderr is not a terminal."""
    import sys

    return not args.quiet and sys.stderr.isatty()
