"""What the method's test-time defenses cost: milliseconds per cloud of zero-shot inference for every shipped model
with each defense, all timed in one run on the same threads (the ms / cloud column of docs/results.md's robustness
table).

    python benchmarks/bench_defenses.py [--batch 64] [--threads 1] [--repeats 5]

For every case: `get_point_features` on a batch of seeded random clouds (1024 points on the unit sphere's scale)
under `torch.inference_mode()`, the median wall time of a call after one warm-up, divided by the batch. The cases
are the defenses of `get_point_features` as the robustness table runs them: none; PointDAE purification (one round
at the config's level, 250); purification keeping the input (the two embeddings averaged); randomized smoothing
(K = 4 noisy copies at t_in 250). "vs alone" is the case's time over the same model without a defense.
"""

from __future__ import annotations

import argparse
import platform

import torch
from timing import median_time

from dual_denoising import DualDenoisingModel, resolve_model
from dual_denoising.point_ops import normalize_to_unit_sphere

SMOOTHING = {"inference_point_noise_level": 250, "num_noise_samples": 4}
CASES = [  # (shipped model, defense, get_point_features keywords)
    ("ulip-tiny", "none", {}),
    ("ulip-noise-tiny", "none", {}),
    ("ulip-noise-tiny", "smoothing, K 4 at t_in 250", SMOOTHING),
    ("dual-denoising-tiny", "none (K 1, S 1)", {}),
    ("dual-denoising-tiny", "purification, 1 round at t 250", {"purification_rounds": 1}),
    ("dual-denoising-tiny", "purification keeping the input", {"purification_rounds": 1,
                                                               "purification_keep_input": True}),
    ("dual-denoising-tiny", "smoothing, K 4 at t_in 250", SMOOTHING),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU "
          f"threads; batch {args.batch}, median of {args.repeats}\n")
    print("| model | defense | ms / cloud | vs alone |")
    print("|---|---|---:|---:|")
    points = normalize_to_unit_sphere(torch.randn(args.batch, 1024, 3, generator=torch.Generator().manual_seed(0)))
    models, alone = {}, {}
    for name, defense, kwargs in CASES:
        if name not in models:
            models[name] = DualDenoisingModel.from_pretrained(resolve_model(name)).eval()
        model = models[name]

        def call(model=model, kwargs=kwargs):
            with torch.inference_mode():
                return model.get_point_features(points, generator=torch.Generator().manual_seed(0), **kwargs)

        ms = 1000 * median_time(call, args.repeats) / args.batch
        alone.setdefault(name, ms)
        print(f"| `{name}` | {defense} | {ms:.1f} | {ms / alone[name]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
