"""The paper's comparison at small scale on SynthShapes: direct alignment (ULIP, contrastive) against Dual Denoising,
clean and under attack, on the same data, teacher and training budget; plus the ablations.

    python examples/robustness_synthshapes.py [--work-dir outputs/embedded-default] [--robust-samples 160] [--eot 2]

Reuses the SynthShapes data, teacher and Dual Denoising run of examples/train_embedded_default.py (same work dir) and
trains what is missing with `recipes.DEFAULT_BUDGET` (every variant gets the same steps and schedule):
  - the contrastive baseline on all classes;
  - Dual Denoising with the stop-gradient off (ablation);
  - the unseen-category protocol: both methods pretrained on the seen classes only, tested on all 32 classes.
Evaluations (`dual_denoising.evaluation`): clean top-1 on the whole test split (1,280 shapes); robust accuracy under
PGD-Linf (eps 0.05, 20 steps, EOT over --eot draws for the stochastic models), PGD-L2, saliency drop and point add on
a seeded random subset of --robust-samples test shapes (the same subset for every model). Writes
`replication.json` and `replication.md` into the work dir, and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from dual_denoising import DualDenoisingModel  # noqa: E402
from dual_denoising.attacks import default_attacks  # noqa: E402
from dual_denoising.data import load_triples, load_triples_metadata  # noqa: E402
from dual_denoising.evaluation import class_embeddings, evaluate_zero_shot  # noqa: E402
from dual_denoising.recipes import ensure_features, ensure_synthshapes, ensure_teacher, pretrain_variant  # noqa: E402


def evaluate(model_dir: Path, test, attacks: list[str], robust_samples: int, eot: int, **feature_kwargs) -> dict:
    """Clean accuracy on the whole split, robust accuracy on the subset; seen/unseen accuracy from the classes."""
    model = DualDenoisingModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    names = test.features["label"].names
    class_embeds = class_embeddings(model, names, tokenizer)
    common = dict(class_embeds=class_embeds, class_names=names, show_progress=False, **feature_kwargs)
    clean = evaluate_zero_shot(model, test, batch_size=64, **common)
    row = {"clean_top1": clean["clean"]["top1"], "per_class": clean["clean"]["per_class_accuracy"]}
    if attacks:
        stochastic = model.config.objective == "dual_denoising"
        chosen = default_attacks(model.config.point_config.num_points, eot_samples=eot if stochastic else 1,
                                 names=attacks)
        robust = evaluate_zero_shot(model, test, attacks=chosen, max_samples=robust_samples, batch_size=16, **common)
        row["subset_clean_top1"] = robust["clean"]["top1"]
        for name, result in robust["attacks"].items():
            row[name] = {"robust_accuracy": result["robust_accuracy"],
                         "attack_success_rate": result["attack_success_rate"], "seconds": result["seconds"]}
    return row


def seen_unseen(row: dict, seen: list[str], unseen: list[str]) -> tuple[float, float]:
    per_class = row["per_class"]
    return (sum(per_class[c] for c in seen) / len(seen), sum(per_class[c] for c in unseen) / len(unseen))


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/embedded-default"))
    parser.add_argument("--robust-samples", type=int, default=160, help="test shapes attacked (seeded subset)")
    parser.add_argument("--eot", type=int, default=2, help="EOT draws per attack step for the stochastic models")
    parser.add_argument("--attacks", default="pgd_linf,pgd_l2,drop,add")
    parser.add_argument("--skip", nargs="*", default=[], choices=["stop_gradient", "unseen", "ablations"])
    args = parser.parse_args()
    attacks = [a for a in args.attacks.split(",") if a]
    work = args.work_dir
    start = time.time()

    data = ensure_synthshapes(work / "synthshapes")
    teacher = ensure_teacher(data, work / "teacher")
    ensure_features(data, teacher)
    meta = load_triples_metadata(data)
    test = load_triples(data, split="test").select_columns(["points", "label"])
    results: dict = {"settings": vars(args) | {"work_dir": str(work)}, "main": {}, "ablations": {}, "unseen": {}}

    dd = pretrain_variant(data, teacher, work / "dual_denoising", objective="dual_denoising")
    baseline = pretrain_variant(data, teacher, work / "contrastive", objective="contrastive")
    main_rows = results["main"]
    main_rows["ULIP-style contrastive (baseline)"] = evaluate(baseline, test, attacks, args.robust_samples, args.eot)
    for k in (1, 8):
        main_rows[f"Dual Denoising, K={k}, S=1"] = evaluate(
            dd, test, attacks, args.robust_samples, args.eot, num_noise_samples=k, num_inference_steps=1)

    if "ablations" not in args.skip:
        abl = results["ablations"]
        for k in (1, 4, 8):
            for s in (1, 10):
                abl[f"K={k}, S={s}"] = evaluate(dd, test, ["pgd_linf"] if (k, s) in ((1, 1), (8, 1), (8, 10)) else [],
                                                args.robust_samples, args.eot, num_noise_samples=k,
                                                num_inference_steps=s)
        model = DualDenoisingModel.from_pretrained(dd)
        for level in (100, 300):
            model.config.inference_point_noise_level = level
            noisy_dir = work / f"dual_denoising_tin{level}"
            model.save_pretrained(noisy_dir)  # same weights, another inference setting
            AutoTokenizer.from_pretrained(dd).save_pretrained(noisy_dir)
            abl[f"K=8, S=1, t_in={level}"] = evaluate(noisy_dir, test, ["pgd_linf"], args.robust_samples, args.eot,
                                                      num_noise_samples=8, num_inference_steps=1)
    if "stop_gradient" not in args.skip:
        off = pretrain_variant(data, teacher, work / "dual_denoising_no_stopgrad", objective="dual_denoising",
                               config_overrides={"denoiser_stop_gradient": False})
        results["ablations"]["stop-gradient off, K=8, S=1"] = evaluate(
            off, test, ["pgd_linf"], args.robust_samples, args.eot, num_noise_samples=8, num_inference_steps=1)
    if "unseen" not in args.skip:
        for name, objective in (("contrastive", "contrastive"), ("Dual Denoising K=8", "dual_denoising")):
            run = pretrain_variant(data, teacher, work / f"{objective}_seen_only", objective=objective,
                                   train_on_seen_classes=True)
            row = evaluate(run, test, [], args.robust_samples, args.eot,
                           **({"num_noise_samples": 8} if objective == "dual_denoising" else {}))
            row["seen_top1"], row["unseen_top1"] = seen_unseen(row, meta["seen_classes"], meta["unseen_classes"])
            results["unseen"][name] = row
    results["seconds"] = time.time() - start

    lines = ["| model | clean top-1 (all 1280) | clean (subset) | " + " | ".join(attacks) + " |",
             "|---|---:|---:|" + "---:|" * len(attacks)]
    for name, row in main_rows.items():
        lines.append(f"| {name} | {pct(row['clean_top1'])} | {pct(row.get('subset_clean_top1'))} | "
                     + " | ".join(pct(row.get(a, {}).get("robust_accuracy")) for a in attacks) + " |")
    lines += ["", "| ablation | clean top-1 | PGD-Linf (EOT) |", "|---|---:|---:|"]
    for name, row in results["ablations"].items():
        lines.append(f"| {name} | {pct(row['clean_top1'])} | {pct(row.get('pgd_linf', {}).get('robust_accuracy'))} |")
    if results["unseen"]:
        lines += ["", f"Unseen protocol: pretrained on {len(meta['seen_classes'])} seen classes, tested against all "
                  f"{len(meta['classes'])} (unseen: {', '.join(meta['unseen_classes'])}).", "",
                  "| model | seen top-1 | unseen top-1 |", "|---|---:|---:|"]
        for name, row in results["unseen"].items():
            lines.append(f"| {name} | {pct(row['seen_top1'])} | {pct(row['unseen_top1'])} |")
    table = "\n".join(lines)
    (work / "replication.json").write_text(json.dumps(results, indent=2) + "\n")
    (work / "replication.md").write_text(table + "\n")
    print(table)
    print(f"\n{time.time() - start:.0f} s; wrote {work / 'replication.md'} and replication.json")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
