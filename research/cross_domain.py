"""Orientation and domain shift: zero-shot top-1 of the shipped models on clouds they were not trained like.

    python research/cross_domain.py --work-dir outputs/world --out outputs/world/tables/orientation-val.json \
        --split validation --study orientation
    python research/cross_domain.py --work-dir outputs/world --out outputs/world/tables/cross-domain.json \
        --split test --study domains

Both studies read the folders `scripts/build_shipped_models.py` writes (`synthshapes-1024`) and, for the domains,
the SynthShapes-Scan folders (`dual-denoising make-synthetic --scan VARIANT --out WORK/scan-VARIANT`).

--study orientation   each cloud turned by one of the 24 axis-aligned rotations (seeded per cloud; "any up axis"), or
                      by a uniformly random rotation ("SO(3)"), then classified under every rule that could undo it:
                      `y` (nothing: the models read Y-up), `auto` (the pipeline's `up_axis="auto"`: the 24
                      orientations, one kept by `choose_orientation`, with the model's identity prior), `auto without
                      the prior`, `auto, 6 up then 4 turns` (`two_stage_pick`: the up direction first, then the turn
                      about it; 10 passes), `most confident` (that rule without the orientation head), `head only`
                      (its most likely turn), `auto-up6` (the 6 up directions only), `mean24` (logits averaged over the 24); on
                      the SO(3) set the same after the principal axes (`pca+auto` is the pipeline's `up_axis="pca"`).
                      The two axis-aligned sets cost 24 passes per cloud together, SO(3) 24 more. The rules
                      are compared on --split validation (the last 16 training shapes of every class, which the
                      shipped models never trained on); the chosen one is then reported on the test split.
--study domains       complete clouds (the test split) against the three scan variants, K in --num-noise-samples for Dual
                      Denoising models (S from the model's config), top-1 with Wilson 95% intervals.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dual_denoising.data import load_triples  # noqa: E402
from dual_denoising.evaluation import class_embeddings, per_orientation_logits, prepare_points, wilson_interval  # noqa: E402
from dual_denoising.orientations import COMPOSE, ORIENTATIONS, choose_orientation, principal_axes  # noqa: E402
from dual_denoising.shipped import load_model_and_tokenizer, shipped_models  # noqa: E402
from dual_denoising.training import validation_indices  # noqa: E402

SCAN_VARIANTS = ("object", "background", "perturbed")


def load_split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Model-ready clouds `(M, 1024, 3)`, labels and class names of a split ("validation": see above)."""
    data = load_triples(folder, split="train" if split == "validation" else split).with_format("numpy")
    labels = np.asarray(data["label"])
    if split == "validation":
        keep = validation_indices(labels)
        data, labels = data.select(keep.tolist()), labels[keep]
    return prepare_points(list(data["points"]), 1024), torch.as_tensor(labels), data.features["label"].names


def chains_of(model, chains: int | None) -> dict:
    """The number of noise samples K for a Dual Denoising model (a contrastive one draws none)."""
    return {"num_noise_samples": chains} if model.config.objective == "dual_denoising" else {}


def logits_of(model, class_embeds, points: torch.Tensor, chains: int | None, batch_size: int = 64) -> torch.Tensor:
    """`(M, C)` zero-shot logits, each cloud with its own seeded noise (the pipeline's rule: seed 0 per cloud)."""
    kwargs = chains_of(model, chains)
    out = []
    with torch.no_grad():
        for start in range(0, len(points), batch_size):
            chunk = points[start : start + batch_size]
            generators = [torch.Generator().manual_seed(0) for _ in range(len(chunk))]
            out.append(model.zero_shot_logits(chunk, class_embeds, generator=generators, **kwargs).float())
    return torch.cat(out)


def summary(right: torch.Tensor) -> dict:
    low, high = wilson_interval(int(right.sum()), len(right))
    return {"accuracy": float(right.float().mean()), "low": low, "high": high, "n": len(right)}


def rotate(points: torch.Tensor, rotations: np.ndarray) -> torch.Tensor:
    """`points (M, N, 3)` turned by `rotations (M, 3, 3)` (row vectors: x -> R x)."""
    return torch.einsum("mij,mnj->mni", torch.as_tensor(rotations, dtype=points.dtype), points)


def random_rotations(count: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform rotations (QR of Gaussian matrices with the sign fix, det +1)."""
    q, r = np.linalg.qr(rng.standard_normal((count, 3, 3)))
    q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1
    return q


ORIENTATION_SETS = ("as trained (Y-up)", "any up axis", "SO(3)")


def two_stage_pick(logits: torch.Tensor, turn_logits: torch.Tensor, weight: float, prior: float) -> torch.Tensor:
    """A cheaper `auto` (10 passes instead of 25): the up direction first, from the 6 readings with no turn about it
    (the head's probability summed over the 4 turns about each up direction, weighed with the classifier's confidence
    as `choose_orientation` weighs them), then the turn about it, from the 4 readings of that up direction; the
    identity prior b added to the given up direction and to the given turn. `(B, 24, C)`, `(B, 24)` -> `(B,)`."""
    confidence = logits.log_softmax(-1).amax(-1)  # (B, 24): ORIENTATIONS[4 u + k], u the up direction, k the turn
    head = turn_logits.log_softmax(-1)
    up_score = head.unflatten(1, (6, 4)).logsumexp(-1) + weight * confidence[:, ::4]
    up_score[:, 0] += prior
    up = up_score.argmax(-1)
    candidates = 4 * up[:, None] + torch.arange(4)
    score = head.gather(1, candidates) + weight * confidence.gather(1, candidates)
    score[:, 0] += torch.where(up == 0, prior, 0.0)
    return 4 * up + score.argmax(-1)


def orientation_rows(model, class_embeds, points, labels, sets=ORIENTATION_SETS, seed: int = 0) -> dict:
    """Each set's rules. The axis-aligned sets share one computation: a cloud turned by ORIENTATIONS[t] and then
    by ORIENTATIONS[o] is the upright cloud turned by ORIENTATIONS[COMPOSE[o, t]] (exactly: the rotations have
    entries 0 and +-1, and FPS, kNN and the model see the same coordinates), so the turned clouds' 24 readings are
    the upright ones', permuted; only the orientation head reads each turned cloud anew. `pca+` (the pipeline's
    `up_axis="pca"`: principal axes first) is measured on the SO(3) set, the only one it is for."""
    rng = np.random.default_rng(seed)
    turns = rng.integers(len(ORIENTATIONS), size=len(points))
    so3 = random_rotations(len(points), rng)
    upright = None
    rows = {}
    for name in [n for n in ORIENTATION_SETS if n in sets]:
        if name == "SO(3)":
            clouds = rotate(points, so3)
            base = rotate(clouds, principal_axes(clouds))
            prefix = "pca+"
            per_orientation = per_orientation_logits(model, class_embeds, base, **chains_of(model, 1))
        else:
            if upright is None:
                upright = per_orientation_logits(model, class_embeds, points, **chains_of(model, 1))
            shown = np.zeros(len(points), dtype=int) if name == "as trained (Y-up)" else turns
            clouds = base = rotate(points, ORIENTATIONS[shown])
            prefix = ""
            per_orientation = upright[torch.arange(len(points))[:, None], torch.as_tensor(COMPOSE[:, shown].T)]
        row = {"y": summary(per_orientation[:, 0].argmax(1) == labels) if not prefix else
               summary(logits_of(model, class_embeds, clouds, 1).argmax(1) == labels)}
        pick = choose_orientation(per_orientation)  # without the head: the most confident
        row[prefix + "most confident"] = summary(per_orientation[torch.arange(len(base)), pick].argmax(1) == labels)
        prior = 0.0 if prefix else getattr(model.config, "orientation_identity_prior", 0.0)  # "auto" keeps the given
        if model.orientation_head is not None:  # the learned turn (scripts/fit_orientation_head.py)
            with torch.no_grad():
                turn = torch.cat([model.get_orientation_logits(chunk) for chunk in base.split(128)])
            weight = model.config.orientation_confidence_weight
            threshold = 1.0 if prefix else getattr(model.config, "orientation_keep_threshold", 1.0)
            pick = choose_orientation(per_orientation, turn, weight, prior, threshold)  # the pipeline's rule
            row[prefix + "auto"] = summary(per_orientation[torch.arange(len(base)), pick].argmax(1) == labels)
            row[prefix + "head only"] = summary(per_orientation[torch.arange(len(base)), turn.argmax(-1)].argmax(1)
                                                == labels)
            if not prefix:
                row["auto without the prior"] = summary(per_orientation[torch.arange(len(base)), choose_orientation(
                    per_orientation, turn, weight)].argmax(1) == labels)
                pick = two_stage_pick(per_orientation, turn, weight, prior)
                row["auto, 6 up then 4 turns"] = summary(per_orientation[torch.arange(len(base)), pick].argmax(1)
                                                         == labels)
        else:  # the pipeline's rule without a head
            pick = choose_orientation(per_orientation, None, 0.0, prior)
            row[prefix + "auto"] = summary(per_orientation[torch.arange(len(base)), pick].argmax(1) == labels)
        if not prefix:
            up6 = per_orientation[:, ::4]  # yaw 0 of each up direction
            row["auto-up6"] = summary(up6[torch.arange(len(base)), choose_orientation(up6)].argmax(1) == labels)
            row["mean24"] = summary(per_orientation.mean(1).argmax(1) == labels)
        rows[name] = row
        print(f"    {name}: " + ", ".join(f"{k} {100 * v['accuracy']:.1f}" for k, v in row.items()), flush=True)
    return rows


def domain_rows(model, class_embeds, work: Path, split: str, chains: list[int]) -> dict:
    sets = {"complete": work / "synthshapes-1024"} | {f"scan: {v}": work / f"scan-{v}" for v in SCAN_VARIANTS}
    ks = chains if model.config.objective == "dual_denoising" else [None]
    rows = {}
    for name, folder in sets.items():
        points, labels, _ = load_split(folder, split)
        rows[name] = {f"K={k}" if k else "deterministic": summary(logits_of(model, class_embeds, points, k).argmax(1)
                                                                   == labels) for k in ks}
        print(f"    {name}: " + ", ".join(f"{c} {100 * r['accuracy']:.1f}" for c, r in rows[name].items()), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/world"))
    parser.add_argument("--out", type=Path, required=True, help="JSON results (models already there are reused)")
    parser.add_argument("--study", choices=["orientation", "domains"], required=True)
    parser.add_argument("--split", choices=["validation", "test"], default="validation")
    parser.add_argument("--model", action="append", default=None,
                        help="a shipped model's short name or a folder (repeatable; default: every shipped model)")
    parser.add_argument("--num-noise-samples", type=int, nargs="+", default=[1, 4, 8], help="K for Dual Denoising models")
    parser.add_argument("--sets", nargs="+", choices=ORIENTATION_SETS, default=list(ORIENTATION_SETS),
                        help="the orientation study's sets (each costs 48 passes per cloud)")
    args = parser.parse_args()

    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name in args.model or list(shipped_models()):
        if name in results:
            continue
        start = time.perf_counter()
        model, tokenizer = load_model_and_tokenizer(name)
        print(f"{name}:", flush=True)
        if args.study == "orientation":
            points, labels, names = load_split(args.work_dir / "synthshapes-1024", args.split)
            class_embeds = class_embeddings(model, names, tokenizer)
            results[name] = orientation_rows(model, class_embeds, points, labels, args.sets)
        else:
            _, _, names = load_split(args.work_dir / "synthshapes-1024", "test")
            results[name] = domain_rows(model, class_embeddings(model, names, tokenizer), args.work_dir, args.split,
                                        args.num_noise_samples)
        results[name]["seconds"] = time.perf_counter() - start
        results[name]["split"] = args.split
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    for name, rows in results.items():
        print(f"\n{name} ({rows['split']}, {rows['seconds']:.0f} s)")
        for row_name, row in rows.items():
            if isinstance(row, dict):
                print(f"  {row_name:<20} " + "  ".join(f"{k} {100 * v['accuracy']:.1f} [{100 * v['low']:.0f}, "
                                                       f"{100 * v['high']:.0f}]" for k, v in row.items()))


if __name__ == "__main__":
    main()
