"""Rebuild the models shipped in the package (src/dual_denoising/pretrained/) from nothing, offline.

    python examples/train_embedded_default.py [--work-dir outputs/world] [--no-pack]

Stages, each skipped when its output exists (an interrupted run continues; a second run reuses everything):
  1. SynthShapes at its default size: 32 classes x 200 shapes (160 train / 40 test) x 2 views, seed 0;
  2. the small CLIP teacher, trained on the training renders and captions of all classes;
  3. the teacher's image and text embeddings as dataset columns, and the clouds reduced once to 1,024 points;
  4. the shipped models, each trained by examples/probe_feature_readout.py on the training shapes minus the
     validation split (text targets, batch 32, AdamW lr 1e-3 cosine, one core each; RUNS below);
  4b. SynthShapes-Scan (three variants, as `make-synthetic --scan`) and the scan model, a fine-tune of the control
     with half of its training clouds replaced by their scans (SCAN_RUNS below);
  5. their test-split table (examples/robustness_budgets.py: clean top-1 on 1,280 shapes; on 64 of them adaptive
     PGD-Linf at eps 0.01 and 0.02 with EOT 4, the fixed-randomness attack, and 100 steps for the deterministic ones),
     and the scan model's scan table (examples/cross_domain.py --study domains, test split);
  6. packing: each model into pretrained/<name> (float16 weights, loaded as float32; the teacher's text tower stored
     once, in pretrained/shared/), and the default chosen by the rule of `choose_default`, with the reason in
     pretrained/index.json and the model's metadata.json. `--pack-only NAME` packs that one model (and rewrites the
     default's reason, which names every model) and leaves the others as they are.
  7. the default's orientation head (examples/fit_orientation_head.py: fitted on the packed copy's frozen encoder,
     its confidence weight chosen on the validation split), written into its shipped copy: `up_axis="auto"`.
Stage 4 takes about 75 minutes per 2,400-update run on one core of our 2-core machine; run it with the two long
runs side by side (the script starts at most --jobs at once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dual_denoising.synth import SCAN_VARIANTS  # noqa: E402
from dual_denoising.training.recipes import (  # noqa: E402
    DEFAULT_CHOICE_EPS,
    choose_default,
    ensure_features,
    ensure_resampled,
    ensure_synthshapes,
    ensure_synthshapes_scan,
    ensure_teacher,
    pack_embedded_model,
    set_default_reason,
)

HERE = Path(__file__).resolve().parent
# name -> (variant, updates, config overrides, one-line summary): the recipe of the shipped models, as they were trained
# (the method with the settings chosen on the validation split, which the tiny preset carries: README, "The schedule
# and the tau law, measured" and "An InfoNCE term on the x0 estimate")
RUNS = {
    "dual-denoising-tiny": ("dual_denoising", 2400, {"feature_timestep_max_prob": 0.5, "feature_log_snr_shift": -3.119,
                                                     "feature_contrastive_weight": 0.25,
                                                     "denoiser_context_grad_scale": 1.0},
                            "Dual Denoising (tiny): PointDAE + feature denoiser, half of the training tau at T-1, "
                            "log-SNR shift -3.119, InfoNCE on the x0 estimate (w 0.25), 2,400 updates"),
    "ulip-noise-tiny": ("contrastive", 2400, {"point_noise_augmentation": True},
                        "ULIP-style direct alignment trained on PointDAE's point noise (the robustness control), "
                        "2,400 updates"),
    "ulip-tiny": ("contrastive", 800, {}, "ULIP-style direct alignment (the plain baseline), 800 updates"),
}
# name -> (the model of RUNS it starts from, updates, peak lr, share of the training clouds replaced by one of their
# scans, one-line summary): the model for scanned clouds (README, "Orientation and scans"). Shipped without an
# orientation head: the one it starts from was fitted to the encoder before the fine-tune.
SCAN_RUNS = {
    "ulip-noise-scan-tiny": ("ulip-noise-tiny", 1800, 3e-4, 0.5,
                             "The control (ulip-noise-tiny) fine-tuned with half of its training clouds replaced by "
                             "single-view scans (SynthShapes-Scan: object, background, perturbed), 1,800 updates: "
                             "the shipped model for scanned, partial clouds"),
}
EPS = DEFAULT_CHOICE_EPS


def probe_command(work: Path, name: str, variant: str, steps: int, overrides: dict, *extra: str) -> list[str]:
    out = work / "runs" / name
    return [sys.executable, str(HERE / "probe_feature_readout.py"), "--work-dir", str(work), "--variant", variant,
            "--feature-target", "text", "--steps", str(steps), "--overrides", json.dumps(overrides),
            "--save", str(out), "--out", str(out) + ".json", *extra]


def train(work: Path, commands: dict[str, list[str]], jobs: int) -> dict[str, Path]:
    """Run each model's training command (at most `jobs` at once), skipping the models already trained."""
    runs, pending = {}, []
    for name, command in commands.items():
        runs[name] = work / "runs" / name
        if not (runs[name] / "config.json").is_file():
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/world"))
    parser.add_argument("--jobs", type=int, default=2, help="training runs at once (one core each)")
    parser.add_argument("--no-pack", action="store_true", help="train and evaluate, but leave the package data alone")
    parser.add_argument("--pack-only", choices=[*RUNS, *SCAN_RUNS], default=None,
                        help="pack this model only (the default's reason is rewritten too); the others stay")
    args = parser.parse_args()
    work = args.work_dir
    (work / "runs").mkdir(parents=True, exist_ok=True)

    data = ensure_synthshapes(work / "synthshapes")
    teacher = ensure_teacher(data, work / "teacher")
    ensure_features(data, teacher)
    data = ensure_resampled(data, work / "synthshapes-1024")  # FPS once, not in every epoch
    runs = train(work, {name: probe_command(work, name, variant, steps, overrides, "--eval-every", "200")
                        for name, (variant, steps, overrides, _) in RUNS.items()}, args.jobs)
    scans = [ensure_synthshapes_scan(work / f"scan-{variant}", variant) for variant in SCAN_VARIANTS]
    runs |= train(work, {name: probe_command(work, name, "contrastive", steps, {}, "--init", str(runs[init]),
                                             "--lr", str(lr), "--scan-prob", str(share), "--eval-every", "600",
                                             "--mix-scans", *map(str, scans))
                         for name, (init, steps, lr, share, _) in SCAN_RUNS.items()}, args.jobs)

    table = work / "tables" / "shipped.json"
    command = [sys.executable, str(HERE / "robustness_budgets.py"), "--work-dir", str(work), "--out", str(table),
               "--robust-samples", "64", "--eps", "0.01", str(EPS), "--long-eps", str(EPS)]
    command += [a for name, out in runs.items() for a in ("--model", f"{name}={out}")]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    rows = json.loads(table.read_text())
    domains = work / "tables" / "cross-domain-shipped.json"  # the scan models' scan table
    scan_models = [a for name in SCAN_RUNS for a in ("--model", str(runs[name]))]
    subprocess.run([sys.executable, str(HERE / "cross_domain.py"), "--work-dir", str(work), "--out", str(domains),
                    "--study", "domains", "--split", "test", *scan_models],
                   check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    domain_rows = json.loads(domains.read_text())
    default, reason = choose_default(rows)
    print(f"default: {default} ({reason})")
    if args.no_pack:
        return
    recipe = "python examples/train_embedded_default.py"
    for name, out in runs.items():
        if args.pack_only and name != args.pack_only:
            continue
        if name in RUNS:
            summary, extra = RUNS[name][3], {}
            training_run = {"variant": RUNS[name][0], "updates": RUNS[name][1], "config_overrides": RUNS[name][2]}
        else:
            init, steps, lr, share, summary = SCAN_RUNS[name]
            extra = {"scans": domain_rows[str(out)]}
            training_run = {"variant": "contrastive", "init": init, "updates": steps, "learning_rate": lr,
                            "scan_share": share, "scan_variants": list(SCAN_VARIANTS)}
        # the inference settings the table measured become the shipped ones
        config_updates = rows[name]["feature_kwargs"] | ({"orientation_head": False} if name in SCAN_RUNS else {})
        dest = pack_embedded_model(out, data, teacher, recipe, name, summary, make_default=name == default,
                                   default_reason=reason if name == default else None,
                                   extra_metadata={"evaluation": rows[name], **extra,
                                                   "training_run": {**training_run, "feature_target": "text"}},
                                   config_updates=config_updates)
        print(f"packed {name} into {dest}")
    if args.pack_only:
        set_default_reason(default, reason)
        return
    # 7. the default's orientation head, fitted on the packed copy (so every other weight stays the shipped one)
    head_run = work / "runs" / f"{default}-orientation"
    if not head_run.exists():
        subprocess.run([sys.executable, str(HERE / "fit_orientation_head.py"), "--work-dir", str(work), "--model",
                        default, "--out", str(head_run)], check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    subprocess.run([sys.executable, str(HERE / "fit_orientation_head.py"), "--work-dir", str(work), "--model",
                    str(head_run), "--reuse-head", "--pack", default], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "2"})


if __name__ == "__main__":
    main()
