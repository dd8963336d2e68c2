"""Short training probes: how fast does each way of reading the CLIP feature out of a point cloud learn?

    python examples/probe_feature_readout.py --variant dual_denoising [--steps 300] [--work-dir outputs/embedded-default]
    python examples/probe_feature_readout.py --variant dual_denoising --feature-target text \
        --overrides '{"feature_timestep_max_prob": 0.5}' --out probes/mix50.json      # a setting to choose

Each probe trains a fresh tiny model for --steps updates of 32 clouds (AdamW lr 1e-3, 40 warm-up steps, cosine;
no augmentation; a random view of the teacher's image features or a random caption's text features, per
--feature-target) on the resampled SynthShapes training split of examples/train_embedded_default.py, and prints the
zero-shot top-1 of `get_point_features` (K=1, S=1) on 256 scored shapes every 50 updates (K=8, S=10 as well at the
end). The scored shapes come from the *validation split*: the last --validation-per-class training shapes of every
class, left out of training (so settings are never chosen on the test split); `--eval-split test` scores the test
split instead (--eval-samples of it); `--train-classes seen` trains on the seen classes only and reports seen and
unseen top-1 apart (the unseen-category table). --overrides sets any config field. One core per probe (OMP_NUM_THREADS=1): about 8 minutes for 300.

Variants (the README's "why the method does not classify at this budget" table):
  contrastive           the ULIP baseline (InfoNCE on [CLS; max-pool] -> linear)
  regression            the same readout trained with the denoiser's MSE to sqrt(D) * normalize(image feature)
  dual_denoising        the method as designed (stop-gradient off here), tau ~ U{0..T-1}
  tau_max               the method with every feature timestep at T-1 (what S=1 inference starts from), no
                        PointDAE loss: a pure regression through the denoiser's cross-attention
  tau_max_zero_input    tau_max with the denoiser's noisy input zeroed (is the noise in the way?)
  tau_max_clean_points  tau_max with the point noise switched off (is the point noise in the way?)
  frozen_contrastive    tau_max with the encoder of the trained contrastive model, frozen (is the encoder the limit?)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from dual_denoising import DualDenoisingModel  # noqa: E402
from dual_denoising.data import load_triples, load_triples_metadata  # noqa: E402
from dual_denoising.evaluation import class_embeddings, prepare_points  # noqa: E402
from dual_denoising.pipeline_dual_denoising import ORIENTATIONS  # noqa: E402
from dual_denoising.point_ops import normalize_to_unit_sphere  # noqa: E402
from dual_denoising.training.recipes import VALIDATION_PER_CLASS, validation_indices  # noqa: E402

ORIENTATIONS_T = torch.as_tensor(ORIENTATIONS, dtype=torch.float32)  # the 24 axis-aligned rotations (--augment)

VARIANTS = ("contrastive", "regression", "dual_denoising", "tau_max", "tau_max_zero_input", "tau_max_clean_points",
            "frozen_contrastive")
ENCODER_PARTS = ("patch_embedding", "position_embedding", "encoder")


def build(variant: str, teacher: Path, work: Path, extra: dict) -> DualDenoisingModel:
    preset = Path(__file__).resolve().parent.parent / "hub_configs" / "tiny"
    objective = "contrastive" if variant in ("contrastive", "regression") else "dual_denoising"
    overrides = {"denoiser_context_grad_scale": 1.0, **extra}
    if variant.startswith("tau_max") or variant == "frozen_contrastive":
        overrides["lambda_rec"] = 0.0
    if variant == "tau_max_clean_points":
        overrides["point_noise_max_sigma"] = 1e-6
    model = DualDenoisingModel.from_teacher(teacher, preset, objective=objective, **overrides)
    if variant == "frozen_contrastive":
        source = DualDenoisingModel.from_pretrained(work / "contrastive").state_dict()
        model.load_state_dict({k: v for k, v in source.items() if k.split(".")[0] in ENCODER_PARTS}, strict=False)
        for name, parameter in model.named_parameters():
            if name.split(".")[0] in ENCODER_PARTS:
                parameter.requires_grad_(False)
    if variant.startswith("tau_max") or variant == "frozen_contrastive":
        model.config.feature_timestep_max_prob = 1.0  # every tau at T-1
    if variant == "tau_max_zero_input":
        denoise = model.denoiser.forward
        model.denoiser.forward = lambda sample, timesteps, context: denoise(torch.zeros_like(sample), timesteps, context)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/embedded-default"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--feature-target", choices=["image", "text"], default="image",
                        help="what the model aligns with: the teacher's image (view) or text (caption) embeddings")
    parser.add_argument("--overrides", type=json.loads, default={}, help="JSON of config fields to set")
    parser.add_argument("--eval-split", choices=["validation", "test"], default="validation")
    parser.add_argument("--validation-per-class", type=int, default=VALIDATION_PER_CLASS)
    parser.add_argument("--out", type=Path, help="write the curve and the final numbers here (JSON)")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--init", type=Path, default=None,
                        help="start from this trained model (a from_pretrained folder) instead of a fresh one")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW, 40 warmup updates, cosine)")
    parser.add_argument("--mix-scans", type=Path, nargs="*", default=[],
                        help="SynthShapes-Scan folders of the same shapes (make-synthetic --scan VARIANT): each "
                        "training cloud is replaced by one of its scans with probability --scan-prob (same targets)")
    parser.add_argument("--scan-prob", type=float, default=0.6)
    parser.add_argument("--augment", choices=["none", "orientations"], default="none",
                        help="orientations: turn every training cloud by one of the 24 axis-aligned rotations "
                        "(uniform, per cloud and update), so the model learns to read any up axis")
    parser.add_argument("--train-classes", choices=["all", "seen"], default="all",
                        help="seen: train on the dataset's seen classes only (its metadata's seen_classes) and report "
                        "seen and unseen top-1 separately (the unseen-category table; use with --eval-split test)")
    parser.add_argument("--eval-samples", type=int, default=256, help="how many shapes of --eval-split are scored")
    parser.add_argument("--save", type=Path, help="save the trained model here (a from_pretrained folder) and keep a "
                        "resumable state in it every 200 updates while training")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    data, teacher = args.work_dir / "synthshapes-1024", args.work_dir / "teacher"
    if not (data / "data").is_dir():
        raise SystemExit(f"{data} not found: run examples/train_embedded_default.py --work-dir {args.work_dir} first")
    train = load_triples(data, split="train").with_format("numpy")
    labels = np.asarray(train["label"])
    # validation: the last shapes of every class in the training split, never trained on
    held_out = validation_indices(labels, args.validation_per_class)
    if args.eval_split == "validation":
        scored = train.select(np.random.default_rng(0).permutation(held_out)[: args.eval_samples].tolist())
        train = train.select(np.setdiff1d(np.arange(len(train)), held_out).tolist())
    else:
        test_split = load_triples(data, split="test").shuffle(seed=0)
        scored = test_split.select(range(min(args.eval_samples, len(test_split)))).with_format("numpy")
    seen_ids = None
    if args.train_classes == "seen":
        seen = load_triples_metadata(data).get("seen_classes")
        if not seen or args.mix_scans:
            raise SystemExit("--train-classes seen needs seen_classes in the dataset's metadata and no --mix-scans")
        seen_ids = [train.features["label"].names.index(name) for name in seen]
        train = train.select(np.flatnonzero(np.isin(np.asarray(train["label"]), seen_ids)).tolist())
        print(f"training on the {len(seen_ids)} seen classes only: {len(train)} shapes", flush=True)
    points = normalize_to_unit_sphere(torch.as_tensor(np.stack(train["points"])).float())
    scans = []  # (V, M, 1024, 3): the same training shapes, scanned (row for row)
    for folder in args.mix_scans:
        scan_train = load_triples(folder, split="train").with_format("numpy")
        if args.eval_split == "validation":
            scan_train = scan_train.select(np.setdiff1d(np.arange(len(scan_train)), held_out).tolist())
        if list(scan_train["shape_id"]) != list(train["shape_id"]):
            raise SystemExit(f"{folder} does not hold the same training shapes in the same order")
        scans.append(prepare_points(list(scan_train["points"]), points.shape[1]))
    scans = torch.stack(scans) if scans else None
    targets = torch.as_tensor(np.stack(train[f"{args.feature_target}_embeds"])).float()
    test_points = normalize_to_unit_sphere(torch.as_tensor(np.stack(scored["points"])).float())
    test_labels = torch.as_tensor(np.asarray(scored["label"]))
    test = scored

    overrides = {"feature_target": args.feature_target, **args.overrides}
    if args.init is not None:  # continue from a trained model (its config; --overrides do not apply)
        model = DualDenoisingModel.from_pretrained(args.init)
        if model.config.objective != ("dual_denoising" if args.variant == "dual_denoising" else "contrastive"):
            raise SystemExit(f"--init {args.init} is a {model.config.objective} model; --variant {args.variant} differs")
    else:
        model = build(args.variant, teacher, args.work_dir, overrides)
    with torch.no_grad():
        class_embeds = class_embeddings(model, test.features["label"].names, AutoTokenizer.from_pretrained(teacher))
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 40) * 0.5 * (1 + math.cos(math.pi * s / args.steps)))
    generator = torch.Generator().manual_seed(args.seed)

    def right(chains: int = 1, steps: int = 1) -> torch.Tensor:
        """`(scored,)` booleans: top-1 right on the scored shapes with K = chains, S = steps."""
        model.eval()
        with torch.no_grad():
            embeds = torch.cat([model.get_point_features(chunk, chains, steps,
                                                         generator=torch.Generator().manual_seed(0))
                                for chunk in test_points.split(256)])
        model.train()
        return (embeds @ class_embeds.T).argmax(1) == test_labels

    def top1(chains: int = 1, steps: int = 1) -> float:
        return 100 * right(chains, steps).float().mean().item()

    print(f"| variant | update | loss | top-1 (256 {args.eval_split} shapes, K=1, S=1) | seconds |\n"
          "|---|---:|---:|---:|---:|")
    curve, first, elapsed = {}, 1, 0.0
    state_file = args.save / "probe_state.pt" if args.save else None
    if state_file is not None and state_file.is_file():  # resume: weights, optimizer, schedule, RNGs, curve
        state = torch.load(state_file, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        curve, first, elapsed = state["curve"], state["step"] + 1, state["seconds"]
        print(f"resumed at update {state['step']}", flush=True)
    start = time.time() - elapsed
    model.train()
    for step in range(first, args.steps + 1):
        batch = torch.randint(0, len(points), (32,), generator=generator)
        clouds = points[batch]
        if scans is not None:  # scan-style training: some clouds become one of their scans
            use = torch.rand(len(batch), generator=generator) < args.scan_prob
            variant = torch.randint(0, len(scans), (len(batch),), generator=generator)
            clouds = torch.where(use[:, None, None], scans[variant, batch], clouds)
        if args.augment == "orientations":
            turn = ORIENTATIONS_T[torch.randint(0, len(ORIENTATIONS_T), (len(batch),), generator=generator)]
            clouds = torch.einsum("bij,bnj->bni", turn, clouds)
        if args.variant == "regression":
            predicted = model._pool_and_project(model.encode(clouds)[-1]).float()
            target = model.config.embed_dim ** 0.5 * F.normalize(targets[batch][:, 0], dim=-1)
            out = SimpleNamespace(loss=F.mse_loss(predicted, target))
        else:
            out = model(points=clouds, generator=generator, **{f"{args.feature_target}_embeds": targets[batch]})
        optimizer.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        if step % args.eval_every == 0 or step == args.steps:
            curve[step] = top1()
            print(f"| {args.variant} | {step} | {out.loss.item():.3f} | {curve[step]:.1f} | {time.time() - start:.0f} |",
                  flush=True)
        if state_file is not None and step % 200 == 0 and step < args.steps:
            args.save.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "generator": generator.get_state(),
                        "torch_rng": torch.get_rng_state(), "curve": curve, "step": step,
                        "seconds": time.time() - start}, state_file)
    final = {"K1S1": curve[args.steps]}
    if model.config.objective == "dual_denoising":
        final["K8S10"] = top1(8, 10)
    if seen_ids is not None:  # the unseen-category table: each part's top-1 among all the class names
        hits, is_seen = right(), torch.isin(test_labels, torch.as_tensor(seen_ids))
        final.update({f"{part}_K1S1": 100 * hits[mask].float().mean().item()
                      for part, mask in (("seen", is_seen), ("unseen", ~is_seen))})
        final.update(seen_shapes=int(is_seen.sum()), unseen_shapes=int((~is_seen).sum()))
    print(f"final top-1 on {args.eval_split}: {final}")
    if args.save:
        model.save_pretrained(args.save)
        AutoTokenizer.from_pretrained(teacher).save_pretrained(args.save)
        state_file.unlink(missing_ok=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"variant": args.variant, "overrides": overrides, "steps": args.steps,
                                        "eval_split": args.eval_split, "train_classes": args.train_classes,
                                        "eval_samples": len(test_labels), "curve": curve, "final": final,
                                        "seconds": time.time() - start}, indent=2) + "\n")


if __name__ == "__main__":
    main()
