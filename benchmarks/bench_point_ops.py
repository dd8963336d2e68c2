"""Time per call of our point ops against compiled CPU alternatives, where installed.

    python benchmarks/bench_point_ops.py [--repeats 5] [--device cpu|cuda]

Prints a markdown table: median wall time over `--repeats` calls after one warm-up, on this machine's threads.
Compiled alternatives: fpsample (FPS; `fps_sampling` is the exact textbook FPS, `bucket_fps_kdline_sampling` is
QuickFPS, also exact but it starts from an index of its own kd-tree order, not the requested start, so its indices
cannot match a fixed-start FPS), point-cloud-utils (kNN, Chamfer), pykdtree (kNN). They run one cloud at a time.
"""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np
import torch
from timing import median_time

from dual_denoising.point_ops import chamfer_distance, farthest_point_sample, knn


def available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    rows = []

    def add(op, shape, impl, seconds, note=""):
        rows.append((op, shape, impl, seconds * 1e3, note))

    for batch, n, s, k in [(8, 8192, 512, 32), (32, 1024, 128, 16)]:
        clouds = torch.rand(batch, n, 3, generator=g)
        on_device = clouds.to(device)
        shape = f"B={batch} N={n} -> {s}"
        ours = farthest_point_sample(on_device, s)
        add("FPS", shape, f"dual_denoising ({device.type})", median_time(lambda: farthest_point_sample(on_device, s), args.repeats, sync))
        if available("fpsample"):
            import fpsample

            arrays = [c.numpy() for c in clouds]
            same = np.array_equal(np.stack([fpsample.fps_sampling(a, s, start_idx=0) for a in arrays]), ours.cpu().numpy())
            add("FPS", shape, "fpsample.fps_sampling", median_time(lambda: [fpsample.fps_sampling(a, s, start_idx=0) for a in arrays], args.repeats),
                "same indices" if same else "DIFFERENT indices")
            add("FPS", shape, "fpsample.bucket_fps_kdline_sampling (h=7)",
                median_time(lambda: [fpsample.bucket_fps_kdline_sampling(a, s, h=7, start_idx=0) for a in arrays], args.repeats),
                "exact FPS from another start: indices differ")

        centres = on_device[:, :s]
        shape = f"B={batch} N={n}, {s} queries, k={k}"
        add("kNN", shape, f"dual_denoising ({device.type})", median_time(lambda: knn(centres, on_device, k), args.repeats, sync))
        queries = [c[:s].numpy() for c in clouds]
        arrays = [c.numpy() for c in clouds]
        if available("point_cloud_utils"):
            import point_cloud_utils as pcu

            add("kNN", shape, "point_cloud_utils.k_nearest_neighbors",
                median_time(lambda: [pcu.k_nearest_neighbors(q, a, k) for q, a in zip(queries, arrays)], args.repeats))
        if available("pykdtree"):
            from pykdtree.kdtree import KDTree

            add("kNN", shape, "pykdtree (build + query)",
                median_time(lambda: [KDTree(a).query(q, k=k) for q, a in zip(queries, arrays)], args.repeats))

    for batch, groups, k in [(32, 128, 16), (8, 512, 32)]:
        x = torch.rand(batch * groups, k, 3, generator=g)
        y = torch.rand(batch * groups, k, 3, generator=g)
        xd, yd = x.to(device), y.to(device)
        shape = f"{batch}x{groups} patches of k={k}"
        add("Chamfer-L2", shape, f"dual_denoising ({device.type})", median_time(lambda: chamfer_distance(xd, yd), args.repeats, sync))
        xg, yg = xd.clone().requires_grad_(True), yd.clone().requires_grad_(True)
        add("Chamfer-L2 fwd+bwd", shape, f"dual_denoising ({device.type})",
            median_time(lambda: chamfer_distance(xg, yg).backward(), args.repeats, sync))
        if available("point_cloud_utils"):
            import point_cloud_utils as pcu

            xs, ys = x.numpy(), y.numpy()
            add("Chamfer-L2", shape, "point_cloud_utils.chamfer_distance (loop over sets)",
                median_time(lambda: [pcu.chamfer_distance(a, b) for a, b in zip(xs, ys)], args.repeats), "forward only, no gradient")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}; median of {args.repeats}\n")
    print("| op | size | implementation | ms / call | note |")
    print("|---|---|---|---:|---|")
    for op, shape, impl, ms, note in rows:
        print(f"| {op} | {shape} | {impl} | {ms:.2f} | {note} |")


if __name__ == "__main__":
    main()
