"""Parameters, GFLOPs per cloud and time of `get_point_features` (parallel noise inference) per preset.

    python benchmarks/bench_model.py [--presets tiny small] [--batch-sizes 1 32] [--repeats 3] [--device cpu]

GFLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` (matmuls, attention; a multiply-add counts 2) for
one cloud; FPS, kNN, norms and activations are not in the count. Time is the median wall time of a call under
`torch.inference_mode()` after one warm-up. The last column is the time relative to K=1 at the same S and batch:
the design's target is at most 1.5x for K=8, S=1, batch 32, small preset.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from timing import median_time

from dual_denoising import DualDenoisingConfig, DualDenoisingModel

HUB_CONFIGS = Path(__file__).resolve().parent.parent / "hub_configs"


def count_gflops(model, points, **kwargs) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model.get_point_features(points, **kwargs)
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--chains", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 10])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads, {args.dtype}, "
          f"median of {args.repeats}\n")
    print("| preset | params (M) | batch | K | S | GFLOPs / cloud | ms / call | clouds / s | vs K=1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for preset in args.presets:
        config = DualDenoisingConfig.from_pretrained(HUB_CONFIGS / preset)
        torch.manual_seed(0)
        model = DualDenoisingModel(config).to(device, dtype).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        num_points = config.point_config.num_points
        for batch in args.batch_sizes:
            points = (torch.rand(batch, num_points, 3) * 2 - 1).to(device, dtype)
            for steps in args.steps:
                baseline = None
                for chains in args.chains:
                    kwargs = dict(num_noise_samples=chains, num_inference_steps=steps)
                    gflops = count_gflops(model, points[:1], **kwargs)

                    def call():
                        with torch.inference_mode():
                            model.get_point_features(points, generator=torch.Generator(device).manual_seed(0), **kwargs)

                    seconds = median_time(call, args.repeats, sync)
                    baseline = baseline or seconds
                    print(f"| {preset} | {params:.2f} | {batch} | {chains} | {steps} | {gflops:.2f} | "
                          f"{seconds * 1e3:.1f} | {batch / seconds:.1f} | {seconds / baseline:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
