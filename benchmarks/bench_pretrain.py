"""Pretraining throughput and peak memory per preset, device and precision: a markdown table.

    python benchmarks/bench_pretrain.py [--presets tiny small] [--batch-size 8] [--steps 3] [--devices cpu cuda]
    OMP_NUM_THREADS=1 python benchmarks/bench_pretrain.py --against-loop --dataset DIR [--recipe dual-denoising-tiny]

`--against-loop` measures the trainer on real data against the smallest loop that trains the same model: clouds
already reduced to the model's point count and held in memory as one tensor, random batches, AdamW, the recipe's
schedule, no augmentation, no logging (the loop the shipped models were once trained by). Both run `--steps` updates
of the recipe's batch on the same dataset, one after the other in their own processes; the trainer's figure is its
own `train_samples_per_second` (the loop only: data set-up, the FPS cache and saving are reported apart).

Each case runs in its own process (so the peak memory is that case's): the model built from a `hub_configs` preset,
the trainer's AdamW groups (`training.create_optimizer`), prepared by Accelerate with `mixed_precision` "no" (fp32)
or "bf16" (autocast; weights and optimizer states stay fp32), then `--warmup` + `--steps` optimizer updates on random
clouds `(B, N, 3)` with random teacher embeddings `(B, D)`: forward, backward, gradient clipping, step. Reported:
clouds per second and seconds per update over the timed steps, and the peak memory: on CPU the process's peak
resident set (`resource.getrusage`, which includes the ~0.5 GiB of the imported libraries; the column after it is
the rise over the RSS before the model was built), on GPU `torch.cuda.max_memory_allocated`.
Data loading is not included (see `prepare_dataset` for its cost). CPU timings depend on the cores and their load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HUB_CONFIGS = Path(__file__).resolve().parent.parent / "hub_configs"


def _rss_mib() -> float:
    """Current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return 0.0


def run_case(preset: str, device: str, precision: str, objective: str, batch_size: int, warmup: int, steps: int) -> dict:
    """One measurement, in this process."""
    import torch
    from accelerate import Accelerator

    from dual_denoising import DualDenoisingConfig, DualDenoisingModel
    from dual_denoising.training import PretrainingArguments, create_optimizer, freeze_unused_parameters, update_config

    baseline_rss = _rss_mib()
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision="bf16" if precision == "bf16" else "no")
    config = update_config(DualDenoisingConfig.from_pretrained(HUB_CONFIGS / preset), {"objective": objective})
    torch.manual_seed(0)
    model = DualDenoisingModel(config)
    freeze_unused_parameters(model)
    optimizer = create_optimizer(model, PretrainingArguments(dataset="", output_dir=""))  # the trainer's defaults
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()

    generator = torch.Generator().manual_seed(0)
    points = torch.nn.functional.normalize(torch.randn(batch_size, config.point_config.num_points, 3, generator=generator), dim=-1)
    points = (points * torch.rand(batch_size, config.point_config.num_points, 1, generator=generator)).to(accelerator.device)
    embeds = torch.randn(batch_size, config.embed_dim, generator=generator).to(accelerator.device)
    sync = torch.cuda.synchronize if accelerator.device.type == "cuda" else (lambda: None)

    def update() -> float:
        loss = model(points=points, image_embeds=embeds, text_embeds=embeds).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(warmup):
        update()
    sync()
    if accelerator.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    losses = [update() for _ in range(steps)]
    sync()
    seconds = (time.perf_counter() - start) / steps
    result = {
        "preset": preset, "device": accelerator.device.type, "precision": precision, "objective": objective,
        "batch_size": batch_size, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "seconds_per_step": seconds, "samples_per_second": batch_size / seconds, "final_loss": losses[-1],
        "threads": torch.get_num_threads(),
    }
    if accelerator.device.type == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        result["device_name"] = torch.cuda.get_device_name()
    else:
        result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        result["peak_rise_mib"] = result["peak_mib"] - baseline_rss
    return result


def run_plain_loop(dataset: str, recipe: str, steps: int) -> dict:
    """The reference: the recipe's model trained from in-memory tensors by a bare loop, in this process."""
    import math

    import numpy as np
    import torch

    from dual_denoising import DualDenoisingConfig, DualDenoisingModel
    from dual_denoising.data import load_triples
    from dual_denoising.point_ops import normalize_to_unit_sphere
    from dual_denoising.training import load_recipe, reduce_clouds, resolve_preset, update_config

    options = load_recipe(recipe)
    config = update_config(DualDenoisingConfig.from_pretrained(resolve_preset("tiny")),
                           {**json.loads(options.get("config_overrides") or "{}"), "objective": options["objective"]})
    start = time.perf_counter()
    split = load_triples(dataset, split="train")
    split = reduce_clouds(split.select_columns(["points", "text_embeds", "image_embeds"]),
                          config.point_config.num_points).with_format("numpy")
    points = normalize_to_unit_sphere(torch.as_tensor(np.stack(split["points"])).float())
    column = "text_embeds" if config.feature_target == "text" else "image_embeds"
    targets = torch.as_tensor(np.stack(split[column])).float()
    setup = time.perf_counter() - start
    torch.manual_seed(0)
    model = DualDenoisingModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options["learning_rate"], weight_decay=0.05)
    warmup, batch = options["num_warmup_steps"], options["per_device_train_batch_size"]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    generator = torch.Generator().manual_seed(0)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        rows = torch.randint(0, len(points), (batch,), generator=generator)
        loss = model(points=points[rows], generator=generator, **{column: targets[rows]}).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    seconds = time.perf_counter() - start
    return {"loop": "in-memory loop", "clouds_per_second": steps * batch / seconds, "setup_seconds": setup,
            "threads": torch.get_num_threads()}


def run_trainer(dataset: str, recipe: str, steps: int, output_dir: str) -> dict:
    """`pretrain` with the recipe for `steps` updates, no evaluation or checkpoints, in this process."""
    import torch

    from dual_denoising.training import parse_args, pretrain

    start = time.perf_counter()
    args = parse_args(["--recipe", recipe, "--dataset", dataset, "--output_dir", output_dir, "--max_train_steps",
                       str(steps), "--eval_split", "none", "--checkpointing_steps", "1000000", "--report_to", "none",
                       "--logging_steps", str(steps)])
    results = pretrain(args)
    total = time.perf_counter() - start
    return {"loop": "pretrain", "clouds_per_second": results["train_samples_per_second"],
            "setup_seconds": total - results["train_runtime_seconds"], "threads": torch.get_num_threads()}


def against_loop(args: argparse.Namespace) -> None:
    """The trainer against the bare loop, each in its own process, one after the other: a markdown table."""
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for loop in ("loop", "trainer"):
            case = {"loop": loop, "dataset": args.dataset, "recipe": args.recipe, "steps": args.steps,
                    "output_dir": str(Path(scratch) / "run")}
            done = subprocess.run([sys.executable, __file__, "--loop-case", json.dumps(case)], capture_output=True,
                                  text=True)
            if done.returncode != 0:
                raise SystemExit(f"{loop}: failed\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    print(f"recipe {args.recipe}, {args.steps} updates, {os.cpu_count()} CPUs{load}\n")
    print("| loop | threads | clouds / s | vs the in-memory loop | set-up (s, not timed) |\n|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['loop']} | {row['threads']} | {row['clouds_per_second']:.1f} | "
              f"{row['clouds_per_second'] / rows[0]['clouds_per_second']:.2f}x | {row['setup_seconds']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--objectives", nargs="+", default=["dual_denoising"], choices=["dual_denoising", "contrastive"])
    parser.add_argument("--batch-size", type=int, default=8, help="clouds per update (default 8; 32+ on a GPU)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates first")
    parser.add_argument("--steps", type=int, default=3, help="timed updates")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case and print its JSON
    parser.add_argument("--against-loop", action="store_true",
                        help="the trainer against the bare in-memory loop on --dataset (see the module docstring)")
    parser.add_argument("--dataset", help="a triples folder with teacher embeddings (--against-loop)")
    parser.add_argument("--recipe", default="dual-denoising-tiny", help="the recipe both run (--against-loop)")
    parser.add_argument("--loop-case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop_case:
        case = json.loads(args.loop_case)
        result = (run_plain_loop(case["dataset"], case["recipe"], case["steps"]) if case["loop"] == "loop"
                  else run_trainer(case["dataset"], case["recipe"], case["steps"], case["output_dir"]))
        print(json.dumps(result))
        return
    if args.against_loop:
        if not args.dataset:
            parser.error("--against-loop needs --dataset")
        against_loop(args)
        return

    if args.case:
        print(json.dumps(run_case(**json.loads(args.case))))
        return
    import torch

    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for preset in args.presets:
            for objective in args.objectives:
                for precision in args.precisions:
                    case = dict(preset=preset, device=device, precision=precision, objective=objective,
                                batch_size=args.batch_size, warmup=args.warmup, steps=args.steps)
                    done = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True,
                                          text=True)
                    if done.returncode != 0:
                        print(f"{case}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                        continue
                    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                    print(f"done: {preset} {device} {precision} {objective}", file=sys.stderr)

    load = ", load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs{load}; batch {args.batch_size}, "
          f"{args.warmup} warm-up + {args.steps} timed updates; peak memory: CPU = peak RSS (rise over the RSS "
          "before the model), GPU = max allocated\n")
    print("| preset | objective | device | precision | params (M) | clouds / s | s / update | peak memory (MiB) |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        memory = f"{r['peak_mib']:.0f}" + (f" (+{r['peak_rise_mib']:.0f})" if "peak_rise_mib" in r else "")
        device = r["device_name"] if r["device"] == "cuda" else f"cpu ({r['threads']} threads)"
        print(f"| {r['preset']} | {r['objective']} | {device} | {r['precision']} | {r['params_m']:.2f} | "
              f"{r['samples_per_second']:.2f} | {r['seconds_per_step']:.2f} | {memory} |")


if __name__ == "__main__":
    main()
