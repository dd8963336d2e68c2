"""Zero-shot inference throughput against this machine's own matmul peak: a markdown table.

    python benchmarks/bench_inference.py [--presets tiny small base-8k] [--batch-sizes 1 32] [--num-noise-samples 1 8]
        [--num-inference-steps 1 10] [--dtypes float32 bfloat16] [--devices cpu cuda] [--repeats 3] [--threads N] [--compile]

For every case: `get_point_features` (parallel noise inference: encoder once, K chains, S DDIM steps) on random
clouds, timed as the median wall time of a call under `torch.inference_mode()` after one warm-up; its FLOPs are
counted for the whole batch with `torch.utils.flop_counter.FlopCounterMode` (matmuls and attention; a multiply-add
counts 2; FPS, kNN, norms and activations are not counted, so the fraction below is a lower bound on how busy the
arithmetic units are). The same run measures the practical peak: a large square `torch.matmul` in the same dtype on
the same device and threads (median GFLOP/s). "of peak" is the case's achieved GFLOP/s over that peak; "vs K=1" its
time over K=1 at the same preset, batch, S, dtype and device.

Design targets: small preset, batch 32, 1024 points, S=1, float32 on CPU: K=1 at least 40% of the matmul
GFLOP/s, and K=8 at most 1.5x the time of K=1.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch
from timing import median_time
from torch.utils.flop_counter import FlopCounterMode

from dual_denoising import DualDenoisingConfig, DualDenoisingModel

HUB_CONFIGS = Path(__file__).resolve().parent.parent / "hub_configs"


def count_gflops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        fn()
    return counter.get_total_flops() / 1e9


def matmul_peak(device: torch.device, dtype: torch.dtype, repeats: int, size: int | None = None) -> float:
    """GFLOP/s of a square `size x size` matmul (8192 on GPU, 2048 on CPU by default): the practical peak."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    seconds = median_time(lambda: torch.matmul(a, b), max(repeats, 3), sync)
    return 2 * size**3 / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "base-8k"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--num-noise-samples", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--num-inference-steps", nargs="+", type=int, default=[1, 10])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also time the model under torch.compile")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "") + f"; median of {args.repeats}\n")
    peaks = {}
    for device_name in args.devices:
        for dtype_name in args.dtypes:
            device, dtype = torch.device(device_name), getattr(torch, dtype_name)
            peaks[device_name, dtype_name] = matmul_peak(device, dtype, args.repeats)
            print(f"matmul peak {device_name} {dtype_name}: {peaks[device_name, dtype_name]:.0f} GFLOP/s")
    print()
    print("| preset | device | dtype | compile | batch | K | S | GFLOP / call | ms / call | clouds / s | GFLOP/s "
          "| of peak | vs K=1 |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for preset in args.presets:
        config = DualDenoisingConfig.from_pretrained(HUB_CONFIGS / preset)
        num_points = config.point_config.num_points
        for device_name in args.devices:
            device = torch.device(device_name)
            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            for dtype_name in args.dtypes:
                dtype = getattr(torch, dtype_name)
                torch.manual_seed(0)
                model = DualDenoisingModel(config).to(device, dtype).eval()
                variants = [("no", model.get_point_features)]
                if args.compile:
                    variants.append(("yes", torch.compile(model.get_point_features, dynamic=False)))
                for compiled, features in variants:
                    for batch in args.batch_sizes:
                        points = (torch.rand(batch, num_points, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1)
                        points = points.to(device, dtype)
                        for steps in args.num_inference_steps:
                            baseline = None
                            for chains in args.num_noise_samples:
                                def call(chains=chains, steps=steps):
                                    with torch.inference_mode():
                                        return features(points, chains, steps,
                                                        generator=torch.Generator(device).manual_seed(0))

                                gflop = count_gflops(lambda: model.get_point_features(
                                    points, chains, steps, generator=torch.Generator(device).manual_seed(0)))
                                seconds = median_time(call, args.repeats, sync)
                                baseline = baseline or seconds
                                achieved = gflop / seconds
                                print(f"| {preset} | {device_name} | {dtype_name} | {compiled} | {batch} | {chains} | "
                                      f"{steps} | {gflop:.1f} | {seconds * 1e3:.1f} | {batch / seconds:.1f} | "
                                      f"{achieved:.0f} | {achieved / peaks[device_name, dtype_name]:.0%} | "
                                      f"{seconds / baseline:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
