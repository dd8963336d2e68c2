"""The paper's comparison at small scale on SynthShapes: direct alignment (ULIP, contrastive) against Dual Denoising,
clean and under attack, on the same data, teacher and training budget; plus the ablations.

    python research/robustness_synthshapes.py                       # every section, then the tables
    python research/robustness_synthshapes.py --sections baseline dd_k1 &    # or split over processes ...
    python research/robustness_synthshapes.py --sections dd_k8 ablations &
    python research/robustness_synthshapes.py --report                # ... and assemble the tables

Reuses the SynthShapes data, teacher and Dual Denoising run of scripts/build_shipped_models.py (same --work-dir)
and trains what is missing with `recipes.DEFAULT_BUDGET` (every variant gets the same data, steps and schedule).
Sections (each writes <work-dir>/replication/<section>.json and is skipped when that file exists):
  baseline, dd_k1, dd_k8: the contrastive baseline and Dual Denoising with K = 1 or 8 chains (S = 1): clean top-1
      on the whole test split (1,280 shapes) and robust accuracy under --attacks on a seeded random subset of
      --robust-samples test shapes (the same subset for every model); EOT over --eot draws for the stochastic models;
  ablations: K in {1, 4, 8} x S in {1, 10} (clean), PGD-Linf for K=8/S=10, input point noise t_in in {100, 300} (clean);
  stop_gradient: Dual Denoising trained with the other stop-gradient setting than --stop-gradient (clean, PGD-Linf);
  unseen: both methods pretrained on the seen classes only, tested against all 32 (seen / unseen top-1).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import AutoTokenizer  # noqa: E402

from dual_denoising import DualDenoisingModel  # noqa: E402
from dual_denoising.data import load_triples, load_triples_metadata  # noqa: E402
from dual_denoising.evaluation import InferenceOptions, class_embeddings, evaluate_zero_shot  # noqa: E402
from dual_denoising.evaluation.attacks import default_attacks  # noqa: E402
from dual_denoising.training.recipes import (  # noqa: E402
    ensure_features,
    ensure_resampled,
    ensure_synthshapes,
    ensure_teacher,
    pretrain_variant,
)

# the two arms of the stop-gradient comparison: gamma (the feature loss's gradient into the point tokens) 0 or 1,
# set explicitly (the preset's own gamma is 1, so an arm that leaves it alone is the "off" arm)
STOP_GRADIENT_ARMS = {"on": {"denoiser_context_grad_scale": 0.0}, "off": {"denoiser_context_grad_scale": 1.0}}
SECTIONS = ("baseline", "dd_k1", "dd_k8", "ablations", "stop_gradient", "unseen")


def evaluate(model_dir: Path, test, attacks: list[str], args, **feature_kwargs) -> dict:
    """Clean accuracy on the whole split; robust accuracy on the seeded subset."""
    model = DualDenoisingModel.from_pretrained(model_dir).eval()
    for key in ("inference_point_noise_level",):
        if key in feature_kwargs:
            setattr(model.config, key, feature_kwargs.pop(key))
    names = test.features["label"].names
    class_embeds = class_embeddings(model, names, AutoTokenizer.from_pretrained(model_dir))
    common = dict(class_embeds=class_embeds, class_names=names, show_progress=False,
                  inference=InferenceOptions(**feature_kwargs))
    clean = evaluate_zero_shot(model, test, batch_size=64, **common)
    row = {"model": str(model_dir), "feature_kwargs": feature_kwargs, "clean_top1": clean["clean"]["top1"],
           "per_class": clean["clean"]["per_class_accuracy"], "clean_seconds": clean["seconds"]["total"]}
    if attacks:
        stochastic = model.config.objective == "dual_denoising"
        chosen = default_attacks(model.config.point_config.num_points, eot_samples=args.eot if stochastic else 1,
                                 names=attacks)
        robust = evaluate_zero_shot(model, test, attacks=chosen, max_samples=args.robust_samples, batch_size=16,
                                    **common)
        row["subset_clean_top1"] = robust["clean"]["top1"]
        row["eot_samples"] = args.eot if stochastic else 1
        for name, result in robust["attacks"].items():
            row[name] = {"robust_accuracy": result["robust_accuracy"],
                         "attack_success_rate": result["attack_success_rate"], "seconds": result["seconds"]}
    return row


def run_section(name: str, args, data: Path, teacher: Path, test, meta: dict) -> dict:
    attacks = [a for a in args.attacks.split(",") if a]
    work = args.work_dir
    if name == "baseline":
        return {"ULIP-style contrastive": evaluate(
            pretrain_variant(data, teacher, work / "contrastive", objective="contrastive"), test, attacks, args)}
    def dual_denoising(stop_gradient: str) -> Path:
        folder = "dual_denoising" if stop_gradient == "on" else "dual_denoising_no_stopgrad"
        return pretrain_variant(data, teacher, work / folder, objective="dual_denoising",
                                config_overrides=STOP_GRADIENT_ARMS[stop_gradient])

    dd = dual_denoising(args.stop_gradient)
    if name in ("dd_k1", "dd_k8"):
        k = 1 if name == "dd_k1" else 8
        return {f"Dual Denoising, K={k}, S=1": evaluate(dd, test, attacks, args, num_noise_samples=k,
                                                       num_inference_steps=1)}
    if name == "ablations":
        rows = {}
        for k in (1, 4, 8):
            for s in (1, 10):
                rows[f"K={k}, S={s}"] = evaluate(dd, test, ["pgd_linf"] if (k, s) == (8, 10) else [], args,
                                                 num_noise_samples=k, num_inference_steps=s)
        for level in (100, 300):
            rows[f"K=8, S=1, t_in={level}"] = evaluate(dd, test, [], args, num_noise_samples=8,
                                                       num_inference_steps=1, inference_point_noise_level=level)
        return rows
    if name == "stop_gradient":  # the other setting than the main rows'
        other = "off" if args.stop_gradient == "on" else "on"
        return {f"stop-gradient {other}, K=8, S=1": evaluate(dual_denoising(other), test, ["pgd_linf"], args,
                                                             num_noise_samples=8, num_inference_steps=1)}
    if name == "unseen":
        rows = {}
        for label, objective in (("ULIP-style contrastive", "contrastive"), ("Dual Denoising, K=8, S=1", "dual_denoising")):
            run = pretrain_variant(data, teacher, work / f"{objective}_seen_only", objective=objective,
                                   train_on_seen_classes=True)
            chains = {"num_noise_samples": 8, "num_inference_steps": 1} if objective == "dual_denoising" else {}
            row = evaluate(run, test, [], args, **chains)
            for part in ("seen", "unseen"):
                classes = meta[f"{part}_classes"]
                row[f"{part}_top1"] = sum(row["per_class"][c] for c in classes) / len(classes)
            rows[label] = row
        return rows
    raise ValueError(f"unknown section {name!r}; choose from {SECTIONS}")


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def report(work: Path, attacks: list[str], meta: dict) -> str:
    found = {p.stem: json.loads(p.read_text()) for p in sorted((work / "replication").glob("*.json"))}
    main = {k: v for s in ("baseline", "dd_k1", "dd_k8") for k, v in found.get(s, {}).items()}
    eot = max((row.get("eot_samples", 0) for row in main.values()), default=0)
    lines = [f"| model | clean top-1, all {meta['splits']['test']} test shapes | clean top-1, attacked subset | "
             + " | ".join(attacks) + " |", "|---|---:|---:|" + "---:|" * len(attacks)]
    for name, row in main.items():
        lines.append(f"| {name} | {pct(row['clean_top1'])} | {pct(row.get('subset_clean_top1'))} | "
                     + " | ".join(pct(row.get(a, {}).get("robust_accuracy")) for a in attacks) + " |")
    ablations = {**found.get("ablations", {}), **found.get("stop_gradient", {})}
    if ablations:
        lines += ["", "| ablation (Dual Denoising) | clean top-1 | PGD-Linf (EOT) |", "|---|---:|---:|"]
        for name, row in ablations.items():
            lines.append(f"| {name} | {pct(row['clean_top1'])} | {pct(row.get('pgd_linf', {}).get('robust_accuracy'))} |")
    if found.get("unseen"):
        lines += ["", f"Unseen protocol: pretrained on the {len(meta['seen_classes'])} seen classes, tested against "
                  f"all {len(meta['classes'])} (unseen: {', '.join(meta['unseen_classes'])}).", "",
                  "| model | seen top-1 | unseen top-1 |", "|---|---:|---:|"]
        for name, row in found["unseen"].items():
            lines.append(f"| {name} | {pct(row['seen_top1'])} | {pct(row['unseen_top1'])} |")
    if eot:
        lines += ["", f"Attacks on the subset average the gradient over {eot} noise draws per step (EOT) for the "
                  "stochastic models; the deterministic baseline needs one."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/embedded-default"))
    parser.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--report", action="store_true", help="only assemble the tables from finished sections")
    parser.add_argument("--robust-samples", type=int, default=96, help="test shapes attacked (seeded subset)")
    parser.add_argument("--eot", type=int, default=2, help="EOT draws per attack step for the stochastic models")
    parser.add_argument("--attacks", default="pgd_linf,pgd_l2,drop,add")
    parser.add_argument("--stop-gradient", choices=["on", "off"], default="off",
                        help="denoiser_stop_gradient of the Dual Denoising rows; the stop_gradient section runs the other")
    args = parser.parse_args()
    work = args.work_dir
    (work / "replication").mkdir(parents=True, exist_ok=True)
    data = ensure_synthshapes(work / "synthshapes")
    meta = load_triples_metadata(data)
    if not args.report:
        teacher = ensure_teacher(data, work / "teacher")
        ensure_features(data, teacher)
        data = ensure_resampled(data, work / "synthshapes-1024")
        test = load_triples(data, split="test").select_columns(["points", "label"])
        for section in args.sections:
            out = work / "replication" / f"{section}.json"
            if out.is_file():
                continue
            start = time.time()
            rows = run_section(section, args, data, teacher, test, meta)
            out.write_text(json.dumps(rows, indent=2) + "\n")
            print(f"[{section}] done in {time.time() - start:.0f} s")
    table = report(work, [a for a in args.attacks.split(",") if a], meta)
    (work / "replication.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
