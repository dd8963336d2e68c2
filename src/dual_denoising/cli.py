"""The `dual-denoising` command line: every subcommand's arguments, and the dispatch to the function that does the work.

The parsers live here, apart from the work, so that `dual-denoising --help` and every `dual-denoising COMMAND --help`
answer without importing torch, transformers or datasets: this module imports only the standard library and
`training.arguments` (the pretraining options, derived from a dataclass). Each command names the function that runs it
as "module:function"; that module is imported, and the model registered with transformers, only when the command
runs. The few choices and defaults stated here (up axes, defenses, ScanObjectNN variants, SynthShapes sizes) are
checked against the code they describe by `tests/test_cli.py`.

Errors a user can fix (missing files, bad input) are printed as one line with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from . import __version__
from .training.arguments import DefaultsHelpFormatter, add_pretraining_arguments

# stated in help texts and choices; tests/test_cli.py checks each against the module that owns it
UP_AXES = ("y", "z", "x", "auto", "pca")  # pipeline_dual_denoising.UP_AXES
DEFENSES = ("srs", "sor")  # evaluation.attacks.DEFENSES
DEFAULT_EPS_SWEEP = "0,0.01,0.02,0.05"  # evaluation.zero_shot.DEFAULT_EPS_SWEEP
SAMPLE_METHODS = ("fps", "random")  # data.triples.SAMPLE_METHODS
SCANOBJECTNN_VARIANTS = ("OBJ_BG", "OBJ_ONLY", "PB_T50_RS")  # data.common.SCANOBJECTNN_VARIANTS
SYNTHSHAPES_SHAPES_PER_CLASS, SYNTHSHAPES_VIEWS = 200, 2  # synth.synthshapes.DEFAULT_SHAPES_PER_CLASS, DEFAULT_VIEWS
SYNTHSHAPES_UNSEEN = "bowl,desk,guitar,laptop,night_stand,stairs,stool,tent"  # synth.classes.DEFAULT_UNSEEN_CLASSES
SCAN_VARIANTS = ("object", "background", "perturbed")  # synth.scan.SCAN_VARIANTS


# ----------------------------------------------------------------------------------------------------------------------
# Argument types
# ----------------------------------------------------------------------------------------------------------------------
def float_list(text: str) -> list[float]:
    """"0,0.01,0.02" -> [0.0, 0.01, 0.02] ('none' and blanks are skipped)."""
    try:
        return [float(t) for t in text.split(",") if t.strip() and t.strip().lower() != "none"]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers; got {text!r}") from err


def view_angles(text: str) -> tuple[int, ...] | None:
    """"0,90,180" -> (0, 90, 180); "all" -> None (every rendered azimuth, the importer's default)."""
    if text.strip().lower() == "all":
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated degrees (e.g. 0,90,180,270) or 'all'; got {text!r}")


# ----------------------------------------------------------------------------------------------------------------------
# Using a model: classify, embed, classes, models (dual_denoising.inference)
# ----------------------------------------------------------------------------------------------------------------------
def _add_inference_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="a shipped model's short name (`dual-denoising models` lists them), a saved model "
                        "folder or a Hub id owner/name; default: the shipped default model")
    parser.add_argument("--num-noise-samples", type=int, default=None,
                        help="K, parallel denoising chains per cloud (Dual Denoising models only; default: the "
                        "model's config)")
    parser.add_argument("--num-inference-steps", type=int, default=None,
                        help="S, DDIM steps per chain (Dual Denoising models only; default: the model's config)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="clouds per forward pass: larger is faster and takes more memory")
    parser.add_argument("--up-axis", choices=UP_AXES, default=None,
                        help="the axis that points up in the files: y (the models' convention), z (trimesh, most CAD "
                        "tools and scanners) or x; clouds are turned Y-up. auto (classify only): find it, from the "
                        "24 axis-aligned orientations (about 25 times the cost); pca (classify only, for clouds in "
                        "an arbitrary pose): principal axes onto x, y, z first, then auto. Default: classify auto for a model "
                        "with an orientation head (the shipped default), else y; embed y")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (they are off anyway when stderr "
                        "is not a terminal)")


def add_inference_commands(subparsers) -> None:
    classify = subparsers.add_parser(
        "classify", help="zero-shot classify point-cloud or mesh files",
        description="Zero-shot classification of point-cloud or mesh files against candidate labels.",
    )
    classify.add_argument("files", nargs="+", help="point or mesh files (.npy .npz .xyz .txt .pts .ply .obj .off "
                          ".stl .glb), one cloud each")
    classify.add_argument("--labels", nargs="+", required=True,
                          help="candidate labels, as words or comma-separated (chair table, or chair,table); "
                          "blank or repeated labels are refused")
    classify.add_argument("--top-k", type=int, default=5,
                          help="how many of the best labels to show per file (all of them if fewer)")
    classify.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_inference_options(classify)
    classify.set_defaults(func="dual_denoising.commands.inference:run_classify")

    embed = subparsers.add_parser(
        "embed", help="write 3D embeddings of files to .npy or .parquet",
        description="L2-normalised 3D embeddings (in the teacher CLIP's space) of point-cloud or mesh files.",
    )
    embed.add_argument("files", nargs="+", help="point or mesh files, one cloud each (one embedding row each)")
    embed.add_argument("--out", required=True,
                       help="embeds.npy (with embeds.rows.txt, the input file of each row) or embeds.parquet "
                       "(columns path, embedding)")
    embed.add_argument("--overwrite", action="store_true",
                       help="replace --out (and its .rows.txt) when they exist; an input file is never replaced")
    _add_inference_options(embed)
    embed.set_defaults(func="dual_denoising.commands.inference:run_embed")

    classes = subparsers.add_parser(
        "classes", help="list the classes of the shipped default model",
        description="The classes the shipped default model was trained on (use them as --labels).",
    )
    classes.set_defaults(func="dual_denoising.commands.listing:run_classes", loads_models=False)
    models = subparsers.add_parser(
        "models", help="list the models shipped in the package, by short name",
        description="The models shipped in the package: their short names (for --model), the default marked.",
    )
    models.set_defaults(func="dual_denoising.commands.listing:run_models", loads_models=False)


# ----------------------------------------------------------------------------------------------------------------------
# evaluate (dual_denoising.evaluation)
# ----------------------------------------------------------------------------------------------------------------------
def add_evaluate_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="zero-shot accuracy of a model, clean and under adversarial attacks",
        description=(
            "Zero-shot classification of a labelled triples split with a saved model, clean and under white-box "
            "attacks (EOT for stochastic models). Writes report.json, report.md and PNG plots to --out. Runs on "
            "several processes under torchrun / accelerate launch."
        ),
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="saved DualDenoisingModel folder")
    parser.add_argument("--dataset", required=True, metavar="DIR", help="triples folder with a 'label' column")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--up-axis", choices=UP_AXES[:3], default="y",
                        help="the dataset's up axis (default: y, the models' convention); clouds are turned Y-up")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for report.json, report.md and plots")
    parser.add_argument("--overwrite", action="store_true", help="replace the reports an existing --out holds")
    parser.add_argument(
        "--attacks", default="pgd_linf,pgd_l2,drop,add",
        help="comma-separated attacks among pgd_linf, pgd_l2, drop, add, or 'none' (default: all four)",
    )
    parser.add_argument("--eot", type=int, default=4, metavar="R",
                        help="noise draws averaged per attack gradient for stochastic models (default: 4)")
    parser.add_argument("--num-noise-samples", type=int, default=None, metavar="K", help="default: the model's")
    parser.add_argument("--num-inference-steps", type=int, default=None, metavar="S", help="default: the model's")
    parser.add_argument("--inference-point-noise-level", type=int, default=None, metavar="T_IN",
                        help="randomized smoothing: K noisy copies at point-noise level T_IN > 0, either objective "
                        "(default: the model's)")
    parser.add_argument("--purification-rounds", type=int, default=None, metavar="R",
                        help="PointDAE purification rounds before encoding, Dual Denoising models (default: the "
                        "model's)")
    parser.add_argument("--purification-keep-input", action=argparse.BooleanOptionalAction, default=None,
                        help="with purification, average the embeddings of the cloud as given and of the purified "
                        "cloud (default: the model's)")
    parser.add_argument("--readout", choices=["denoiser", "head", "fusion"], default=None,
                        help="Dual Denoising models with a contrastive head: read the embedding from the denoiser, "
                        "the head or their fusion (default: the model's)")
    parser.add_argument("--fusion-weight", type=float, default=None, metavar="W",
                        help="the head's share in --readout fusion (default: the model's)")
    parser.add_argument("--start-timestep", type=int, default=None, metavar="T",
                        help="start the denoiser from the head's embedding noised to T instead of pure noise; -1 = "
                        "pure noise (default: the model's)")
    parser.add_argument("--unseen-classes", default=None, metavar="A,B",
                        help="the classes the model was not trained on, for the open-set figures (default: the "
                        "dataset metadata's unseen_classes)")
    parser.add_argument("--linf-eps-sweep", type=float_list, default=float_list(DEFAULT_EPS_SWEEP), metavar="E1,E2",
                        help=f"PGD-Linf radii for the accuracy-against-epsilon plot (default: {DEFAULT_EPS_SWEEP})")
    parser.add_argument("--defense", choices=["none", *DEFENSES], default="none",
                        help="input purification before the model (default: none)")
    parser.add_argument("--class-embeds", metavar="FILE", default=None,
                        help="(C, D) class embeddings (.pt, .npy, .safetensors) instead of the model's text tower")
    parser.add_argument("--max-samples", type=int, default=None, metavar="N", help="a seeded random subset of N rows")
    parser.add_argument("--batch-size", type=int, default=16, help="clouds per batch (default: 16)")
    parser.add_argument("--seed", type=int, default=0, help="seeds model noise and attacks (default: 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func="dual_denoising.commands.evaluate:run_evaluate")


# ----------------------------------------------------------------------------------------------------------------------
# import FORMAT (dual_denoising.data.importers)
# ----------------------------------------------------------------------------------------------------------------------
def _add_import_options(parser: argparse.ArgumentParser, src_help: str) -> None:
    parser.add_argument("src", type=Path, metavar="SRC", help=src_help)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output triples folder")
    parser.add_argument("--num-points", type=int, default=None, metavar="N",
                        help="resample every cloud to N points (default: keep the source's points)")
    parser.add_argument("--sample-method", choices=SAMPLE_METHODS, default="fps",
                        help="how --num-points reduces a cloud (default fps, as ULIP)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random sampling (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _import_format(formats, name: str, help: str, function: str, src_help: str) -> argparse.ArgumentParser:
    parser = formats.add_parser(
        name, help=help, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"{help}.\n\nThe folder layout it expects: `python -m pydoc dual_denoising.data.{function}`.",
    )
    _add_import_options(parser, src_help)
    parser.set_defaults(func="dual_denoising.commands.importers:run_import")
    return parser


def add_import_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "import",
        help="convert ModelNet40, ScanObjectNN, ULIP ShapeNet-55 or a folder of files into a triples folder",
        description="Convert real 3D datasets into triples folders (dual_denoising.data.save_triples), one format each.",
    )
    formats = parser.add_subparsers(dest="import_format", metavar="FORMAT", required=True)
    _import_format(formats, "modelnet40-h5", "PointNet's modelnet40_ply_hdf5_2048", "import_modelnet40_h5",
                   "the modelnet40_ply_hdf5_2048 folder")
    p = _import_format(formats, "modelnet40-normal", "modelnet40_normal_resampled (ULIP's ModelNet40)",
                       "import_modelnet40_normal", "the modelnet40_normal_resampled folder")
    p.add_argument("--num-categories", type=int, choices=(10, 40), default=40, help="ModelNet40 or ModelNet10 lists")
    p = _import_format(formats, "scanobjectnn", "ScanObjectNN h5_files (one variant)", "import_scanobjectnn",
                       "the ScanObjectNN h5_files folder")
    p.add_argument("--variant", required=True, choices=sorted(SCANOBJECTNN_VARIANTS), help="which split to import")
    p = _import_format(formats, "shapenet55-ulip", "ULIP's ShapeNet-55 triples (points, rendered views, captions)",
                       "import_shapenet55_ulip", "ULIP's shapenet-55 folder")
    p.add_argument("--pc-dir", type=Path, help="point clouds (default SRC/shapenet_pc)")
    p.add_argument("--split-dir", type=Path, help="folder of train.txt/test.txt (default SRC or SRC/ShapeNet-55)")
    p.add_argument("--taxonomy", type=Path, help="ShapeNetCore taxonomy.json (default SRC/taxonomy.json)")
    p.add_argument("--image-dir", type=Path,
                   help="rendered views (default SRC/rendered_images or SRC/only_rgb_depth_images)")
    p.add_argument("--no-images", action="store_true", help="import points and captions only")
    p.add_argument("--view-angles", type=view_angles, default=None,
                   help="comma-separated azimuths in degrees, or 'all' (default: ULIP's 0,12,...,348)")
    p.add_argument("--include-depth", action="store_true", help="also import the _depth0001 renders")
    p.add_argument("--whole", action="store_true", help="one train split of train+test, as ULIP pre-trains")
    p.add_argument("--skip-missing", action="store_true", help="drop shapes whose cloud or views are missing")
    p = _import_format(formats, "folder", "SRC/<class>/<point or mesh files>, optionally in train/ and test/",
                       "import_folder", "the folder to import")
    p.add_argument("--mesh-samples", type=int, default=8192,
                   help="surface samples per mesh without --num-points (default 8192)")


# ----------------------------------------------------------------------------------------------------------------------
# make-synthetic (dual_denoising.synth), precompute-features (dual_denoising.teacher), pretrain (dual_denoising.training)
# ----------------------------------------------------------------------------------------------------------------------
def add_make_synthetic_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "make-synthetic",
        help="generate the SynthShapes dataset of point/image/text triples",
        description="Generate SynthShapes: parametric meshes of ModelNet40 categories, sampled to point clouds, "
        "rendered and captioned, saved as a parquet triples folder (see dual_denoising.data).",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--shapes-per-class", type=int, default=SYNTHSHAPES_SHAPES_PER_CLASS,
                        help=f"shapes per class, train + test (default {SYNTHSHAPES_SHAPES_PER_CLASS})")
    parser.add_argument("--views", type=int, default=SYNTHSHAPES_VIEWS,
                        help=f"rendered views per shape (default {SYNTHSHAPES_VIEWS})")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed; the same seed gives the same data (default 0)")
    parser.add_argument("--num-points", type=int, default=2048, help="points per cloud (default 2048)")
    parser.add_argument("--image-size", type=int, default=64, help="rendered image size in pixels (default 64)")
    parser.add_argument("--classes", default=None, help="comma-separated class names (default: all)")
    parser.add_argument("--unseen-classes", default=None,
                        help=f"comma-separated classes recorded as unseen in the metadata (default: {SYNTHSHAPES_UNSEEN})")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="fraction of shapes per class held out for the test split (default 0.2)")
    parser.add_argument("--scan", choices=SCAN_VARIANTS, default=None,
                        help="write SynthShapes-Scan instead: the same shapes seen once by a virtual depth camera "
                        "(partial, noisy), as object only, with background (floor and clutter) or perturbed (a "
                        "shifted, turned and scaled crop), like ScanObjectNN's OBJ_ONLY, OBJ_BG and PB_T50_RS; "
                        "--views, --image-size and --unseen-classes do not apply")
    parser.add_argument("--preview", default=None, metavar="FILE.png",
                        help="also write a contact sheet of renders (of the scans with --scan; one row per class) here")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func="dual_denoising.commands.synthetic:run_make_synthetic")


def add_precompute_features_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "precompute-features",
        help="add frozen-CLIP image/text embeddings to a triples dataset",
        description=(
            "Embed every rendered view and caption of a triples folder with a CLIP teacher (a local "
            "save_pretrained folder or a Hub id) and add image_embeds / text_embeds columns (raw projections, "
            "not normalised). A result from the same teacher is reused unless --overwrite is given."
        ),
    )
    parser.add_argument("--teacher", required=True, metavar="CLIP_DIR", help="CLIP folder or Hub id")
    parser.add_argument("--dataset", required=True, metavar="DIR", help="triples folder written by save_triples")
    parser.add_argument("--batch-size", type=int, default=64, help="shapes per forward pass (default: 64)")
    parser.add_argument("--overwrite", action="store_true", help="recompute even if features from this teacher exist")
    parser.set_defaults(func="dual_denoising.commands.features:run_precompute_features")


def add_pretrain_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain", help="pretrain a Dual Denoising model (or the ULIP baseline) with Accelerate",
        description="Pretrain a Dual Denoising model (or the ULIP baseline) with Accelerate; every option is a "
        "field of dual_denoising.training.PretrainingArguments.", formatter_class=DefaultsHelpFormatter,
    )
    add_pretraining_arguments(parser)
    parser.set_defaults(func="dual_denoising.commands.pretrain:run_pretrain")


# ----------------------------------------------------------------------------------------------------------------------
# serve (dual_denoising.app)
# ----------------------------------------------------------------------------------------------------------------------
def add_serve_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="start the web demo (Gradio) on this machine",
        description="A web demo: upload a shape, see it in 3D, classify it, attack it, compare the models.",
    )
    parser.add_argument("--model", default=None,
                        help="a shipped model's short name, a saved folder or a Hub id (default: the shipped default "
                        "beside the plain baseline)")
    parser.add_argument("--compare-with", nargs="*", default=[], help="more models to show beside --model")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free)")
    parser.set_defaults(func="dual_denoising.commands.serve:run_serve")


# ----------------------------------------------------------------------------------------------------------------------
# The parser and the dispatch
# ----------------------------------------------------------------------------------------------------------------------
COMMANDS = [add_inference_commands, add_evaluate_command, add_import_command, add_make_synthetic_command,
            add_precompute_features_command, add_pretrain_command, add_serve_command]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dual-denoising",
        description="Robust zero-shot 3D point-cloud classification with Dual Denoising models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def resolve_command(target: str):
    """"package.module:function" -> the function (the module is imported now, not when the parser is built)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # `pretrain` reads its words again: a --recipe gives the defaults, the words override them
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    if getattr(args, "loads_models", True):  # a listing reads folders only: no torch, no transformers
        from transformers.utils import logging as transformers_logging

        from . import register

        register()  # deferred by `import dual_denoising` under this command line (see the package's docstring)
        transformers_logging.disable_progress_bar()  # weight-loading bars are noise on a command line
    try:
        return int(resolve_command(args.func)(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, OSError) as err:
        print(f"dual-denoising {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
