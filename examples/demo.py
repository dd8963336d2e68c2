"""`make demo`: the main job on the shipped models, offline, in about two minutes on 2 CPU cores.

    python examples/demo.py [--out outputs/demo] [--shapes-per-class 1] [--eot 2] [--eps 0.02] [--steps 10]

1. writes sample shapes as .ply meshes (SynthShapes generators, a seed the models never saw) and classifies the files
   with `pipeline("zero-shot-3d-classification")` (no model given: the shipped default), printing a table;
2. measures the default, the plain baseline and the other shipped models side by side on freshly generated held-out
   shapes: zero-shot top-1,
   clean and under adaptive PGD-Linf at --eps (--steps steps, EOT over the model's noise when it has any), and writes
   the default's report.md, report.json and plots into --out/report;
3. names categories a model never trained on: a shipped model trained on 24 of the 32 classes classifies one mesh of
   each of the other 8 among all 32 names.
A second run reuses the generated data.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import concatenate_datasets, disable_progress_bars  # noqa: E402
from transformers import AutoTokenizer, pipeline  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

import dual_denoising  # noqa: E402,F401
from dual_denoising import DualDenoisingModel  # noqa: E402
from dual_denoising.data import load_triples  # noqa: E402
from dual_denoising.evaluation import class_embeddings, evaluate_zero_shot, save_plots, write_markdown_report  # noqa: E402
from dual_denoising.evaluation.attacks import PGDLinf  # noqa: E402
from dual_denoising.pipeline_dual_denoising import TASK  # noqa: E402
from dual_denoising.shipped import (  # noqa: E402
    DEFAULT_MODEL_DIR,
    resolve_model,
    shipped_model_classes,  # noqa: E402
    shipped_models,
)
from dual_denoising.synth import generate_mesh, save_synthshapes  # noqa: E402

SAMPLE_CLASSES = ["airplane", "chair", "stool", "table", "desk", "lamp", "cup", "vase", "guitar", "sofa"]
DEMO_SEED = 2026  # SynthShapes seed of the demo shapes: the shipped models were trained on seed 0
BASELINE = "ulip-tiny"  # the plain direct-alignment baseline, shown beside the default
# trained on 24 of the 32 classes: names the other 8 from their text alone (scripts/build_shipped_models.py)
UNSEEN_DEMO = "dual-denoising-unseen-demo-tiny"


def write_samples(out_dir: Path, names: list[str] = SAMPLE_CLASSES) -> list[tuple[Path, str]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for name in names:
        path = out_dir / f"{name}.ply"
        if not path.exists():
            mesh, _ = generate_mesh(name, index=0, seed=DEMO_SEED)
            mesh.export(path)
        samples.append((path, name))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--shapes-per-class", type=int, default=1, help="held-out shapes per class to evaluate")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps")
    parser.add_argument("--eot", type=int, default=2, help="EOT draws per PGD step (models with noise)")
    parser.add_argument("--eps", type=float, default=0.02, help="PGD-Linf radius, unit-sphere coordinates")
    args = parser.parse_args()
    transformers_logging.disable_progress_bar()
    disable_progress_bars()
    transformers_logging.set_verbosity_error()
    start = time.time()
    classes = shipped_model_classes()
    print(f"default model: {DEFAULT_MODEL_DIR.name} ({len(classes)} classes; `dual-denoising models` lists them all)\n")

    # 1. classify mesh files
    samples = write_samples(args.out / "samples")
    classifier = pipeline(TASK)
    results = classifier([str(p) for p, _ in samples], candidate_labels=classes, batch_size=len(samples))
    print(f"{'file':<14} {'true class':<12} {'prediction':<12} {'score':>6}   runner-up")
    for (path, truth), ranking in zip(samples, results):
        mark = "" if ranking[0]["label"] == truth else "  (wrong)"
        print(f"{path.name:<14} {truth:<12} {ranking[0]['label']:<12} {ranking[0]['score']:6.3f}   "
              f"{ranking[1]['label']} {ranking[1]['score']:.3f}{mark}")

    # 2. clean and robust accuracy on held-out shapes, the default beside the plain baseline
    data_dir = args.out / f"synthshapes-seed{DEMO_SEED}-{args.shapes_per_class}"
    if not (data_dir / "dual_denoising.json").is_file():
        print(f"\ngenerating {args.shapes_per_class} held-out shapes per class (seed {DEMO_SEED}) ...")
        save_synthshapes(data_dir, args.shapes_per_class, 1, seed=DEMO_SEED, test_fraction=0.0, progress=False)
    # every split of the demo set is held out: none of these shapes was seen in training
    test = concatenate_datasets(list(load_triples(data_dir).values())).select_columns(["points", "label"])
    # the default first, then the plain baseline, then the other shipped models (the method among them)
    others = sorted((n for n in shipped_models() if n != UNSEEN_DEMO), key=lambda name: (name != BASELINE, name))
    models = [Path(DEFAULT_MODEL_DIR)] + [Path(resolve_model(n)) for n in others if n != DEFAULT_MODEL_DIR.name]
    print(f"\n{len(test)} held-out shapes, {len(classes)} classes; PGD-Linf eps {args.eps}, {args.steps} steps, adaptive "
          f"(EOT {args.eot} for a model with noise)")
    print(f"{'model':<30} {'objective':<15} {'clean top-1':>11} {'robust top-1':>12} {'seconds':>8}")
    for folder in models:
        tic = time.time()
        model = DualDenoisingModel.from_pretrained(folder).eval()
        class_embeds = class_embeddings(model, classes, AutoTokenizer.from_pretrained(folder))
        report = evaluate_zero_shot(
            model, test, class_embeds=class_embeds, class_names=classes, batch_size=16, show_progress=False,
            attacks={"pgd_linf": PGDLinf(eps=args.eps, steps=args.steps, eot_samples=args.eot)},
        )
        pgd = report["attacks"]["pgd_linf"]
        mark = " (default)" if folder == Path(DEFAULT_MODEL_DIR) else ""
        print(f"{folder.name + mark:<30} {model.config.objective:<15} {100 * report['clean']['top1']:10.1f}% "
              f"{100 * pgd['robust_accuracy']:11.1f}% {time.time() - tic:8.0f}")
        if folder == Path(DEFAULT_MODEL_DIR):
            report.update(model=folder.name, dataset=data_dir.name, split="all (held out: seed never trained on)")
            report_dir = args.out / "report"
            report_dir.mkdir(parents=True, exist_ok=True)
            (report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
            write_markdown_report(report, report_dir / "report.md", title="make demo: the shipped default model")
            save_plots(report, report_dir)
    print(f"report and plots of the default: {args.out / 'report'}")

    # 3. categories a model never trained on, named from their text alone
    if UNSEEN_DEMO in shipped_models():
        name_categories_never_seen(args.out / "unseen", classes)
    print(f"({time.time() - start:.0f} s)")


def name_categories_never_seen(out_dir: Path, classes: list[str]) -> None:
    """One sample mesh of each class `UNSEEN_DEMO` never trained on, classified among all the class names."""
    folder = Path(resolve_model(UNSEEN_DEMO))
    metadata = json.loads((folder / "metadata.json").read_text())
    unseen, figures = metadata["unseen_classes"], metadata["open_set"]
    samples = write_samples(out_dir, unseen)
    classifier = pipeline(TASK, model=str(folder))
    results = classifier([str(p) for p, _ in samples], candidate_labels=classes, batch_size=len(samples))
    print(f"\n{UNSEEN_DEMO}: trained on {len(classes) - len(unseen)} of the {len(classes)} classes; one mesh of each "
          f"class it never saw, among all {len(classes)} names")
    print(f"{'file':<16} {'never trained on':<17} {'prediction':<12} {'score':>6}")
    named = 0
    for (path, truth), ranking in zip(samples, results):
        named += ranking[0]["label"] == truth
        mark = "  named" if ranking[0]["label"] == truth else ""
        print(f"{path.name:<16} {truth:<17} {ranking[0]['label']:<12} {ranking[0]['score']:6.3f}{mark}")
    print(f"named {named} of {len(samples)} categories it never trained on (on the test split: "
          f"{100 * figures['unseen']['accuracy']:.1f}% of such shapes, chance {100 / len(classes):.1f}%; the 24 it "
          f"trained on: {100 * figures['seen']['accuracy']:.1f}%)")


if __name__ == "__main__":
    main()
