"""Does a Dual Denoising model's feature denoiser use the point tokens? The diagnosis table of docs/results.md.

    python research/diagnose_feature_denoiser.py --model outputs/embedded-default/dual_denoising \\
        --dataset outputs/embedded-default/synthshapes-1024 [--samples 128]

On a seeded random subset of the test split: the denoiser is given the teacher's image feature z0 noised to level
tau and asked for z0 (MSE, and the zero-shot top-1 of its estimate) for tau from 0 to pure noise; then the zero-shot
top-1 of `get_point_features` (which starts from pure noise) for K/S settings, and after re-estimating the
BatchNorm statistics of the patch embedding on clean training clouds.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from dual_denoising import DualDenoisingModel  # noqa: E402
from dual_denoising.data import load_triples  # noqa: E402
from dual_denoising.evaluation import class_embeddings, prepare_points  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True, help="triples folder with image_embeds (precomputed features)")
    parser.add_argument("--samples", type=int, default=128)
    args = parser.parse_args()
    model = DualDenoisingModel.from_pretrained(args.model).eval()
    num_points = model.config.point_config.num_points
    test = load_triples(args.dataset, split="test").shuffle(seed=0).select(range(args.samples)).with_format("numpy")
    class_embeds = class_embeddings(model, test.features["label"].names, AutoTokenizer.from_pretrained(args.model))
    points, labels = prepare_points(list(test["points"]), num_points), torch.as_tensor(test["label"])
    image = torch.as_tensor(np.stack([views[0] for views in test["image_embeds"]]))

    def top1(embeds: torch.Tensor) -> float:
        return 100 * ((F.normalize(embeds, dim=-1) @ class_embeds.T).argmax(1) == labels).float().mean().item()

    def seeded() -> torch.Generator:
        return torch.Generator().manual_seed(0)

    print(f"{args.samples} test shapes; the teacher's own image features score {top1(image):.1f}% top-1\n")
    with torch.no_grad():
        z0 = model.config.embed_dim ** 0.5 * F.normalize(image, dim=-1)
        context = model.denoiser.project_context(model.encode(points))
        print("| tau | MSE to z0 | top-1 of the estimate |\n|---:|---:|---:|")
        for tau in (0, 300, 600, 900, model.config.feature_num_train_timesteps - 1):
            t = torch.full((len(labels),), tau)
            noisy = model.scheduler.add_noise(z0, torch.randn(z0.shape, generator=seeded()), t)
            estimate = model.scheduler.predict_original(model.denoiser(noisy, t, context), t, noisy)
            print(f"| {tau} | {F.mse_loss(estimate, z0).item():.3f} | {top1(estimate):.1f} |")
        print("\n| get_point_features | top-1 |\n|---|---:|")
        for k, s in ((1, 1), (8, 1), (8, 10)):
            print(f"| K={k}, S={s} | {top1(model.get_point_features(points, k, s, generator=seeded())):.1f} |")
        train = load_triples(args.dataset, split="train").shuffle(seed=0).select(range(512)).with_format("numpy")
        clean = prepare_points(list(train["points"]), num_points)
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the clean clouds
            norm.train()
        for start in range(0, len(clean), 64):
            model.encode(clean[start : start + 64])
        for norm in norms:
            norm.eval()
        recalibrated = model.get_point_features(points, 8, 1, generator=seeded())
        print(f"| K=8, S=1, BatchNorm re-estimated on 512 clean training clouds | {top1(recalibrated):.1f} |")


if __name__ == "__main__":
    main()
