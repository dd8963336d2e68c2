"""Short training probes: how fast does each way of reading the CLIP feature out of a point cloud learn?

    python examples/probe_feature_readout.py --variant dual_denoising [--steps 300] [--work-dir outputs/embedded-default]

Each probe trains a fresh tiny model for --steps updates of 32 clouds (AdamW lr 1e-3, 40 warm-up steps, cosine;
no augmentation, view 0 or a random view of the teacher's image features) on the resampled SynthShapes training
split of examples/train_embedded_default.py, and prints the zero-shot top-1 of `get_point_features` (K=1, S=1) on a
seeded subset of 256 test shapes every 50 updates. One core per probe (OMP_NUM_THREADS=1): about 7 minutes.

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
from dual_denoising.data import load_triples  # noqa: E402
from dual_denoising.evaluation import class_embeddings  # noqa: E402
from dual_denoising.point_ops import normalize_to_unit_sphere  # noqa: E402

VARIANTS = ("contrastive", "regression", "dual_denoising", "tau_max", "tau_max_zero_input", "tau_max_clean_points",
            "frozen_contrastive")
ENCODER_PARTS = ("patch_embedding", "position_embedding", "encoder")


def build(variant: str, teacher: Path, work: Path) -> DualDenoisingModel:
    preset = Path(__file__).resolve().parent.parent / "hub_configs" / "tiny"
    objective = "contrastive" if variant in ("contrastive", "regression") else "dual_denoising"
    overrides = {"denoiser_stop_gradient": False}
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
        last = model.config.feature_num_train_timesteps - 1
        draw = model._randint

        def feature_timesteps_at_max(high, shape, like, generator):  # only tau: drawn like z0, (B, D)
            if high == last + 1 and like.dim() == 2 and like.shape[-1] == model.config.embed_dim:
                return torch.full(shape, last, dtype=torch.long, device=like.device)
            return draw(high, shape, like, generator)

        model._randint = feature_timesteps_at_max
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
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    data, teacher = args.work_dir / "synthshapes-1024", args.work_dir / "teacher"
    if not (data / "data").is_dir():
        raise SystemExit(f"{data} not found: run examples/train_embedded_default.py --work-dir {args.work_dir} first")
    train = load_triples(data, split="train").with_format("numpy")
    test = load_triples(data, split="test").shuffle(seed=0).select(range(256)).with_format("numpy")
    points = normalize_to_unit_sphere(torch.as_tensor(np.stack(train["points"])).float())
    image = torch.as_tensor(np.stack(train["image_embeds"])).float()
    test_points = normalize_to_unit_sphere(torch.as_tensor(np.stack(test["points"])).float())
    test_labels = torch.as_tensor(test["label"])

    model = build(args.variant, teacher, args.work_dir)
    with torch.no_grad():
        class_embeds = class_embeddings(model, test.features["label"].names, AutoTokenizer.from_pretrained(teacher))
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 40) * 0.5 * (1 + math.cos(math.pi * s / args.steps)))
    generator = torch.Generator().manual_seed(args.seed)

    def top1() -> float:
        model.eval()
        with torch.no_grad():
            embeds = model.get_point_features(test_points, 1, 1, generator=torch.Generator().manual_seed(0))
        model.train()
        return 100 * ((embeds @ class_embeds.T).argmax(1) == test_labels).float().mean().item()

    print(f"| variant | update | loss | top-1 (256 test shapes, K=1, S=1) | seconds |\n|---|---:|---:|---:|---:|")
    start = time.time()
    model.train()
    for step in range(1, args.steps + 1):
        batch = torch.randint(0, len(points), (32,), generator=generator)
        if args.variant == "regression":
            predicted = model._pool_and_project(model.encode(points[batch])[-1]).float()
            target = model.config.embed_dim ** 0.5 * F.normalize(image[batch][:, 0], dim=-1)
            out = SimpleNamespace(loss=F.mse_loss(predicted, target))
        else:
            out = model(points=points[batch], image_embeds=image[batch], generator=generator)
        optimizer.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == args.steps:
            print(f"| {args.variant} | {step} | {out.loss.item():.3f} | {top1():.1f} | {time.time() - start:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
