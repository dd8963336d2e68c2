"""Rebuild the models shipped in the package (src/dual_denoising/pretrained/) from nothing, offline.

    python scripts/build_shipped_models.py [--work-dir outputs/world] [--models NAME ...] [--no-pack]
    python scripts/build_shipped_models.py --rule-only      # the default's rule again, with the open-set table
    python scripts/build_shipped_models.py --pack-open-set-demo   # the model make demo names unseen categories with

Stages, each skipped when its output exists (an interrupted run continues; a second run reuses everything):
  1. SynthShapes at its default size: 32 classes x 200 shapes (160 train / 40 test) x 2 views, seed 0;
  2. the small CLIP teacher, trained on the training renders and captions of all classes;
  3. the teacher's image and text embeddings as dataset columns (and, for the evaluation drivers, the clouds reduced
     once to 1,024 points);
  4. the shipped models, each trained by `dual-denoising pretrain --recipe NAME` (presets/recipes/NAME.json: text
     targets, batch 32, AdamW, cosine; the validation split carved out; one core each, resumable); the scan model
     (SynthShapes-Scan, three variants, as `make-synthetic --scan`) after the control it is fine-tuned from;
  5. their test-split table (research/robustness_budgets.py: clean top-1 on 1,280 shapes; on 256 of them adaptive
     PGD-Linf at eps 0.02, the rule's radius, with EOT 4 and the fixed-randomness attack), and the scan model's scan table
     (research/cross_domain.py --study domains, test split);
  6. packing: each model into pretrained/<name> (float16 weights, loaded as float32; the teacher's text tower stored
     once, in pretrained/shared/), its card and metadata.json giving the exact `pretrain` command, and the default
     chosen by the rule of `choose_default` (the models not rebuilt take part with their shipped rows; each recipe's
     open-set H, from research/open_set.py's test table, where it was measured), with the reason in
     pretrained/index.json and the model's metadata.json. `--pack-only NAME` packs that one model (and
     rewrites the default's reason, which names every model) and leaves the others as they are.
  7. the orientation heads of the three models that find the up axis (scripts/fit_orientation_head.py: fitted on the packed
     copy's frozen encoder, the confidence weight chosen on the validation split): `up_axis="auto"`.
Stage 4 takes about 70 minutes per 2,400-update run on one core of our 2-core machine; the script runs two at once
(--jobs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dual_denoising.shipped import shipped_models  # noqa: E402
from dual_denoising.synth import SCAN_VARIANTS  # noqa: E402
from dual_denoising.training.recipes import (  # noqa: E402
    DEFAULT_CHOICE_EPS,
    choose_default,
    ensure_features,
    ensure_resampled,
    ensure_synthshapes,
    ensure_synthshapes_scan,
    ensure_teacher,
    pack_shipped_model,
    set_default_reason,
)

HERE = Path(__file__).resolve().parent
RESEARCH = HERE.parent / "research"  # the evaluation drivers the tables come from
# The shipped models, each trained by `dual-denoising pretrain --recipe NAME` (presets/recipes/NAME.json holds every
# option that differs from the trainer's defaults) on the SynthShapes training shapes minus the validation split;
# NAME -> its one-line summary. The order is the training order: the scan model starts from the control.
SUMMARIES = {
    "dual-denoising-tiny": "Dual Denoising (tiny): PointDAE + feature denoiser (image and text targets, half of the "
                           "training tau at T-1, log-SNR shift -3.119, InfoNCE on the x0 estimate, w 0.25) + a "
                           "contrastive head (InfoNCE w 1) that zero-shot reads, 2,400 updates",
    "ulip-noise-tiny": "ULIP-style direct alignment trained on PointDAE's point noise (the robustness control), "
                       "2,400 updates",
    "ulip-tiny": "ULIP-style direct alignment (the plain baseline), 800 updates",
    "ulip-noise-scan-tiny": "The control (ulip-noise-tiny) fine-tuned with half of its training clouds replaced by "
                            "single-view scans (SynthShapes-Scan: object, background, perturbed), 1,800 updates: "
                            "the shipped model for scanned, partial clouds",
}
SCAN_MODELS = {"ulip-noise-scan-tiny": "ulip-noise-tiny"}  # scan model -> the model it is fine-tuned from
ORIENTATION_HEADS = ("dual-denoising-tiny", "ulip-noise-tiny", "ulip-tiny")  # the shipped models that find the up axis
# The open-set run of each shipped model's recipe (research/open_set.py: the recipe trained on split 1's seen classes)
# and the reading the shipped model uses: the rule's open-set criterion reads their test H. The scan model's recipe
# (a fine-tune on scans) has no open-set run: it takes no part in that criterion.
OPEN_SET_RUNS = {"dual-denoising-tiny": ("dd-head-image+text-2400", "head"),
                 "ulip-noise-tiny": ("ulip-noise-text-2400", "head"), "ulip-tiny": ("ulip-text", "head")}
EPS = DEFAULT_CHOICE_EPS


def shipped_rows() -> dict[str, dict]:
    """The evaluation row each shipped model's metadata.json carries (the rule compares every shipped model)."""
    rows = {}
    for name, folder in shipped_models().items():
        metadata = json.loads((folder / "metadata.json").read_text())
        if "evaluation" in metadata:
            rows[name] = metadata["evaluation"]
    return rows


# A model trained on split 1's seen classes only (an open-set run of research/open_set.py), shipped so that `make demo`
# can show a category the model never trained on being named: (name, run, readout).
OPEN_SET_DEMO = ("dual-denoising-unseen-demo-tiny", "dd-head-image+text-2400", "head")


def pack_open_set_demo(work: Path, open_set_table: Path) -> Path:
    """Pack `OPEN_SET_DEMO`'s run, read from its readout, with its test-split open-set figures in its metadata."""
    name, run, readout = OPEN_SET_DEMO
    cell = json.loads(open_set_table.read_text())["test"][run][readout]
    model_dir = work / "open-set" / run
    trained = json.loads((model_dir / "config.json").read_text())
    steps = json.loads((model_dir / "train_results.json").read_text())["global_step"]
    targets = trained["feature_target"].replace("+", " and ")
    summary = (f"The encoder and contrastive head of Dual Denoising with a contrastive head, trained on 24 of "
               f"SynthShapes' 32 classes only ({targets} targets, {steps:,} updates: the shipped method's recipe) and "
               "read from the head (so the denoiser and the PointDAE decoder, which that reading does not use, are "
               "left out): it names categories it never trained on (test split: "
               f"{100 * cell['unseen']['accuracy']:.1f}% of the unseen classes' shapes among all 32 names, "
               f"{100 * cell['seen']['accuracy']:.1f}% of the seen ones). For `make demo`; not a model for use")
    metadata = json.loads((work / "synthshapes" / "dual_denoising.json").read_text())
    dest = pack_shipped_model(
        model_dir, work / "synthshapes", work / "teacher",
        f"python research/open_set.py train --runs {run}; python scripts/build_shipped_models.py --pack-open-set-demo",
        # the head's reading as a contrastive-objective model: the same features to the bit, half the weights
        name, summary, config_updates={"objective": "contrastive"} if readout == "head" else {"zero_shot_readout": readout},
        extra_metadata={"unseen_classes": metadata["unseen_classes"], "feature_target": trained["feature_target"],
                        "open_set": {k: v for k, v in cell.items() if k != "predictions"}})
    print(f"packed {run} ({readout}) into {dest}")
    return dest


def with_open_set(rows: dict[str, dict], table_path: Path) -> tuple[dict[str, dict], float | None]:
    """The rows with each shipped recipe's open-set H (`open_set_h`, from the test split of research/open_set.py's
    table), and the best H measured there over every run and reading on the same split (the same unseen classes) as
    the shipped recipes' runs: a recipe not shipped counts too, a run on another split (a check that a choice carries
    over) does not, its H being on other classes."""
    if not table_path.is_file():
        return rows, None
    test = json.loads(table_path.read_text()).get("test", {})
    out, split = {}, None
    for name, row in rows.items():
        run, readout = OPEN_SET_RUNS.get(name, (None, None))
        cell = test.get(run, {}).get(readout)
        out[name] = row | ({"open_set_h": cell["harmonic_mean"]["accuracy"], "open_set_run": f"{run} ({readout})"}
                           if cell else {})
        split = sorted(cell["unseen_classes"]) if cell else split
    best = max((cell["harmonic_mean"]["accuracy"] for cells in test.values() for cell in cells.values()
                if sorted(cell["unseen_classes"]) == split), default=None)
    return out, best


def pretrain_command(work: Path, name: str, scans: list[Path]) -> list[str]:
    """`dual-denoising pretrain` with the model's recipe on this world's data and teacher (resumable)."""
    command = [sys.executable, "-m", "dual_denoising.cli", "pretrain", "--recipe", name,
               "--dataset", str(work / "synthshapes"), "--teacher", str(work / "teacher"),
               "--output_dir", str(work / "runs" / name), "--resume_from_checkpoint", "latest", "--report_to", "none"]
    if name in SCAN_MODELS:
        command += ["--model_name_or_path", str(work / "runs" / SCAN_MODELS[name]),
                    "--scan_datasets", *map(str, scans)]
    return command


def train(work: Path, commands: dict[str, list[str]], jobs: int) -> dict[str, Path]:
    """Run each model's training command (at most `jobs` at once), skipping the models already trained."""
    runs, pending = {}, []
    for name, command in commands.items():
        runs[name] = work / "runs" / name
        if not (runs[name] / "train_results.json").is_file():
            pending.append((name, command))
    running = []
    while pending or running:
        while pending and len(running) < jobs:
            name, command = pending.pop(0)
            log = open(work / "runs" / f"{name}.log", "a")
            print(f"training {name}: {' '.join(command[1:])}", flush=True)
            running.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                   env={**os.environ, "OMP_NUM_THREADS": "1"})))
        name, process = running.pop(0)
        if process.wait() != 0:
            raise SystemExit(f"training {name} failed: see {work / 'runs' / (name + '.log')}")
    return runs


def rule(rows: dict[str, dict], open_set_table: Path) -> tuple[dict[str, dict], str, str, float | None]:
    """The default's rule on the rows with their recipes' open-set H: (the rows with H, the default, the reason, the
    best H measured)."""
    rows, best_open_set_h = with_open_set(rows, open_set_table)
    default, reason = choose_default(rows, best_open_set_h=best_open_set_h)
    print(f"default: {default} ({reason})")
    return rows, default, reason, best_open_set_h


def apply_rule(rows: dict[str, dict], open_set_table: Path, write: bool) -> None:
    """`rule` on the shipped rows; with `write`, each shipped model's metadata row records its H and the default and
    its reason are written."""
    rows, default, reason, best_open_set_h = rule(rows, open_set_table)
    if not write:
        return
    for name, row in rows.items():
        meta_file = shipped_models()[name] / "metadata.json"
        metadata = json.loads(meta_file.read_text())
        metadata["evaluation"] = row
        meta_file.write_text(json.dumps(metadata, indent=2) + "\n")
    set_default_reason(default, reason, best_open_set_h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/world"))
    parser.add_argument("--jobs", type=int, default=2, help="training runs at once (one core each)")
    parser.add_argument("--no-pack", action="store_true", help="train and evaluate, but leave the package data alone")
    parser.add_argument("--models", nargs="+", choices=list(SUMMARIES), default=None,
                        help="rebuild these shipped models only (default: all); the others stay as shipped, and "
                        "their shipped evaluation rows take part in the choice of the default")
    parser.add_argument("--table", type=Path, default=None,
                        help="the test table's JSON (default: WORK_DIR/tables/shipped.json; a rerun resumes it)")
    parser.add_argument("--pack-only", choices=list(SUMMARIES), default=None,
                        help="pack this model only (the default's reason is rewritten too); the others stay")
    parser.add_argument("--open-set-table", type=Path, default=None,
                        help="research/open_set.py's table (default: WORK_DIR/tables/open-set.json, when it exists): "
                             "the rule's open-set criterion")
    parser.add_argument("--pack-open-set-demo", action="store_true",
                        help=f"pack the open-set run {OPEN_SET_DEMO[1]} as {OPEN_SET_DEMO[0]} (make demo's unseen "
                             "categories); nothing is trained")
    parser.add_argument("--rule-only", action="store_true",
                        help="apply the default's rule to the shipped rows (and the open-set table) and write the "
                             "default; nothing is trained or packed")
    args = parser.parse_args()
    work = args.work_dir
    open_set_table = args.open_set_table or work / "tables" / "open-set.json"
    if args.rule_only:
        return apply_rule(shipped_rows(), open_set_table, write=not args.no_pack)
    if args.pack_open_set_demo:
        pack_open_set_demo(work, open_set_table)
        return
    (work / "runs").mkdir(parents=True, exist_ok=True)

    data = ensure_synthshapes(work / "synthshapes")
    teacher = ensure_teacher(data, work / "teacher")
    ensure_features(data, teacher)
    ensure_resampled(data, work / "synthshapes-1024")  # what the evaluation drivers read (the trainer caches its own)
    names = args.models or list(SUMMARIES)
    scans = []
    if any(name in SCAN_MODELS for name in names):
        scans = [ensure_synthshapes_scan(work / f"scan-{variant}", variant) for variant in SCAN_VARIANTS]
    base = [name for name in names if name not in SCAN_MODELS]
    runs = train(work, {name: pretrain_command(work, name, scans) for name in base}, args.jobs)
    runs |= train(work, {name: pretrain_command(work, name, scans) for name in names if name in SCAN_MODELS},
                  args.jobs)

    table = args.table or work / "tables" / "shipped.json"
    command = [sys.executable, str(RESEARCH / "robustness_budgets.py"), "--work-dir", str(work), "--out", str(table),
               "--robust-samples", "256", "--eps", str(EPS)]
    command += [a for name, out in runs.items() for a in ("--model", f"{name}={out}")]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    rows = json.loads(table.read_text())
    domain_rows = {}
    if any(name in SCAN_MODELS for name in runs):
        domains = work / "tables" / "cross-domain-shipped.json"  # the scan models' scan table
        scan_models = [a for name in runs if name in SCAN_MODELS for a in ("--model", str(runs[name]))]
        subprocess.run([sys.executable, str(RESEARCH / "cross_domain.py"), "--work-dir", str(work), "--out", str(domains),
                        "--study", "domains", "--split", "test", *scan_models],
                       check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        domain_rows = json.loads(domains.read_text())
    rows = shipped_rows() | rows  # the models not retrained keep their shipped rows in the choice of the default
    rows, default, reason, best_open_set_h = rule(rows, open_set_table)
    if args.no_pack:
        return
    recipe = "python scripts/build_shipped_models.py"
    for name, out in runs.items():
        if args.pack_only and name != args.pack_only:
            continue
        extra = {"scans": domain_rows[str(out)]} if name in SCAN_MODELS else {}
        # the inference settings the table measured become the shipped ones
        config_updates = rows[name]["feature_kwargs"] | ({"orientation_head": False} if name in SCAN_MODELS else {})
        dest = pack_shipped_model(out, data, teacher, recipe, name, SUMMARIES[name], extra_metadata={
            "evaluation": rows[name], **extra}, config_updates=config_updates)
        print(f"packed {name} into {dest}")
    set_default_reason(default, reason, best_open_set_h)  # the rule names every model: rewritten whichever were packed
    if args.pack_only:
        return
    # 7. the orientation heads, each fitted on the packed copy (so every other weight stays the shipped one)
    for name in [name for name in ORIENTATION_HEADS if name in runs]:
        head_run = work / "runs" / f"{name}-orientation"
        if not head_run.exists():
            subprocess.run([sys.executable, str(HERE / "fit_orientation_head.py"), "--work-dir", str(work), "--model",
                            name, "--out", str(head_run)], check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        subprocess.run([sys.executable, str(HERE / "fit_orientation_head.py"), "--work-dir", str(work), "--model",
                        str(head_run), "--reuse-head", "--pack", name], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": "2"})

if __name__ == "__main__":
    main()
