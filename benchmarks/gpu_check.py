"""The GPU check: does the package run, agree with the CPU and go fast on CUDA? One command, one markdown report.

    python benchmarks/gpu_check.py [--out gpu_report.md]          # on a CUDA machine: at most about 8 minutes on an H100
    python benchmarks/gpu_check.py --smoke                         # no CUDA: the same steps, tiny, on the CPU (CI)

Steps, each a section of the report:
  1. the `gpu` tests (tests/test_gpu.py) on the device: `get_point_features` of both objectives and every inference
     option against the CPU under the same seed, a training step's loss and gradients, bf16 autocast training, the
     attacks, the pipeline with `device=0`, save/load from a device model;
  2. `bench_inference.py` for the tiny, small and base-8k presets at batch 1 and 64, K 1 and 8, S 1, float32 and
     bfloat16, with the matmul peak measured in the same run; the targets: small, batch 64, K=1, bf16 at >= 40% of
     the bf16 peak, and K=8 at <= 1.3x K=1;
  3. `bench_pretrain.py` for small and base-8k in bf16 (clouds/s, peak memory), and the largest power-of-two batch of
     base-8k that trains in the device's memory;
  4. a 300-update `pretrain` of the tiny preset on a SynthShapes set the script builds (teacher embeddings stood in
     by a fixed random vector per class, so no teacher is needed), on the device and on the CPU: the two loss curves.
The smoke mode runs every step on the CPU with the smallest sizes (the tests against the CPU itself), so that the
script cannot rot where no GPU is lent. A step that fails is reported as failed and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}


def run(command: list[str], timeout: float, env: dict | None = None) -> tuple[int, str, float]:
    """A subprocess's exit code, output (stdout then stderr) and seconds; a timeout is exit code 124."""
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env or ENV, cwd=ROOT)
        return done.returncode, done.stdout + done.stderr, time.perf_counter() - start
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        return 124, output + f"\n(timed out after {timeout:.0f} s)", time.perf_counter() - start


def table_rows(output: str) -> list[list[str]]:
    """The body rows of the markdown tables in `output`, as lists of cells."""
    rows = []
    for line in output.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return [row for row in rows if row and row[0] not in ("preset", "loop")]


def gpu_tests(device: str) -> tuple[str, bool]:
    code, output, seconds = run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests/test_gpu.py", "-p",
                                 "no:cacheprovider"], timeout=240, env={**ENV, "DD_TEST_DEVICE": device})
    summary = next((line for line in reversed(output.splitlines()) if re.search(r"passed|failed|error", line)),
                   "no summary")
    failures = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    text = f"`pytest -m gpu tests/test_gpu.py` on `{device}` ({seconds:.0f} s): **{summary.strip('= ')}**\n"
    if failures:
        text += "\n" + "\n".join(f"- {line}" for line in failures) + "\n"
    return text, code == 0 and "skipped" not in summary


def inference(device: str, smoke: bool) -> tuple[str, bool]:
    presets = ["tiny"] if smoke else ["tiny", "small", "base-8k"]
    batches = ["1", "2"] if smoke else ["1", "64"]
    code, output, seconds = run([sys.executable, str(BENCH / "bench_inference.py"), "--devices", device, "--presets",
                                 *presets, "--batch-sizes", *batches, "--num-noise-samples", "1", "8",
                                 "--num-inference-steps", "1", "--dtypes",
                                 "float32", "bfloat16", "--repeats", "1" if smoke else "5"], timeout=300)
    lines = [line for line in output.splitlines() if line.startswith(("|", "matmul peak", "torch "))]
    text = f"`bench_inference.py` ({seconds:.0f} s, exit {code}):\n\n" + "\n".join(lines) + "\n"
    target = "small" if not smoke else "tiny"
    rows = {(r[0], r[2], r[4], r[5]): r for r in table_rows(output) if len(r) == 13}
    k1, k8 = rows.get((target, "bfloat16", batches[1], "1")), rows.get((target, "bfloat16", batches[1], "8"))
    ok = code == 0 and k1 is not None and k8 is not None
    if ok:
        of_peak, ratio = float(k1[11].rstrip("%")), float(k8[12].rstrip("x"))
        text += (f"\nTargets, {target}, batch {batches[1]}, bf16: K=1 at {of_peak:.0f}% of the bf16 matmul peak "
                 f"(target >= 40%: {'met' if of_peak >= 40 else 'missed'}); K=8 at {ratio:.2f}x K=1 (target <= 1.3x: "
                 f"{'met' if ratio <= 1.3 else 'missed'})\n")
    return text, ok


def training_speed(device: str, smoke: bool) -> tuple[str, bool]:
    presets = ["tiny"] if smoke else ["small", "base-8k"]
    batch = "2" if smoke else "64"
    code, output, seconds = run([sys.executable, str(BENCH / "bench_pretrain.py"), "--devices", device, "--presets",
                                 *presets, "--precisions", "bf16", "--batch-size", batch, "--steps",
                                 "2" if smoke else "10"], timeout=300)
    lines = [line for line in output.splitlines() if line.startswith(("|", "torch "))]
    text = f"`bench_pretrain.py` ({seconds:.0f} s, exit {code}):\n\n" + "\n".join(lines) + "\n"
    # the largest power-of-two batch of base-8k that trains (one update; an out-of-memory case fails its process)
    preset, largest = ("tiny", None) if smoke else ("base-8k", None)
    for batch_size in ([2, 4] if smoke else [64, 128, 256, 512, 1024, 2048]):
        case = dict(preset=preset, device=device, precision="bf16", objective="dual_denoising", batch_size=batch_size,
                    warmup=0, steps=1)
        status, _, _ = run([sys.executable, str(BENCH / "bench_pretrain.py"), "--case", json.dumps(case)], timeout=240)
        if status != 0:
            break
        largest = batch_size
    text += f"\nThe largest power-of-two batch of {preset} that trains in bf16 on `{device}`: {largest}\n"
    return text, code == 0 and largest is not None


def make_dataset(root: Path, smoke: bool) -> Path:
    """A small SynthShapes set with a fixed random vector per class (plus noise) as its teacher embeddings."""
    import numpy as np
    from datasets import DatasetDict

    from dual_denoising.data import save_triples, triples_features
    from dual_denoising.synth import build_synthshapes

    classes = ["chair", "table", "lamp", "cup", "bottle", "bowl", "guitar", "stool"]
    dataset, metadata = build_synthshapes(4 if smoke else 40, views=1, seed=0, num_points=1024, image_size=16,
                                          classes=classes, progress=False, captions_per_shape=1)
    vectors = np.random.default_rng(0).normal(size=(len(classes), 512)).astype(np.float32)

    def embed(row: dict, index: int) -> dict:
        noise = np.random.default_rng(index).normal(size=(1, 512)).astype(np.float32) * 0.1
        return {"image_embeds": vectors[row["label"]] + noise, "text_embeds": vectors[row["label"]] + noise}

    def with_embeds(split):
        features = split.features.copy()
        features.update(triples_features(with_images=False, with_captions=False, embed_dim=512))
        return split.map(embed, with_indices=True, features=features)

    return save_triples(DatasetDict({k: with_embeds(v) for k, v in dataset.items()}), root, metadata=metadata)


def loss_curves(device: str, smoke: bool, scratch: Path) -> tuple[str, bool]:
    updates = 10 if smoke else 300
    data = make_dataset(scratch / "data", smoke)
    curves, notes, ok = {}, [], True
    for where in dict.fromkeys([device, "cpu"]):
        out = scratch / f"run-{where}"
        command = [sys.executable, "-m", "dual_denoising.cli", "pretrain", "--dataset", str(data), "--output_dir",
                   str(out), "--max_train_steps", str(updates), "--per_device_train_batch_size", "4" if smoke else "32",
                   "--eval_split", "none", "--report_to", "none", "--logging_steps", str(max(1, updates // 10)),
                   "--config_overrides", json.dumps({"feature_target": "text"})]
        env = {**ENV, "CUDA_VISIBLE_DEVICES": ""} if where == "cpu" else ENV  # accelerate then picks the CPU
        code, output, seconds = run(command, timeout=420, env=env)
        if code != 0:
            ok = False
            notes.append(f"- `{where}`: failed (exit {code}): {output.strip().splitlines()[-1] if output.strip() else ''}")
            continue
        log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
        curves[where] = {r["step"]: r["loss"] for r in log if "loss" in r}
        notes.append(f"- `{where}`: {seconds:.0f} s")
    steps = sorted(set().union(*curves.values())) if curves else []
    names = list(curves)
    text = f"{updates} updates of the tiny preset, batch {4 if smoke else 32}, fp32:\n\n" + "\n".join(notes) + "\n\n"
    text += "| update | " + " | ".join(f"loss on {n}" for n in names) + " |\n|---:|" + "---:|" * len(names) + "\n"
    text += "".join(f"| {s} | " + " | ".join(f"{curves[n].get(s, float('nan')):.4f}" for n in names) + " |\n"
                    for s in steps)
    return text, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="the CPU smoke mode (no CUDA needed; seconds)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args()
    import torch

    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; run with --smoke for the CPU smoke mode")
    device = "cpu" if args.smoke else "cuda"
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    report = [f"# GPU check ({'CPU smoke mode' if args.smoke else 'CUDA'})", "",
              f"- device: {name}; torch {torch.__version__}"
              + (f", CUDA {torch.version.cuda}" if device == "cuda" else "") + f"; {os.cpu_count()} CPUs", ""]
    start, verdicts = time.perf_counter(), {}
    with tempfile.TemporaryDirectory() as scratch:
        steps = [("1. The gpu tests", lambda: gpu_tests(device)),
                 ("2. Inference speed", lambda: inference(device, args.smoke)),
                 ("3. Training speed and memory", lambda: training_speed(device, args.smoke)),
                 ("4. Loss curves, device and CPU", lambda: loss_curves(device, args.smoke, Path(scratch)))]
        for title, step in steps:
            try:
                text, ok = step()
            except Exception as error:  # noqa: BLE001  (one broken step must not hide the others)
                text, ok = f"failed: {type(error).__name__}: {error}\n", False
            verdicts[title] = ok
            report += [f"## {title}", "", text]
            print(f"{title}: {'ok' if ok else 'FAILED'}", file=sys.stderr, flush=True)
    report += ["## Summary", "", *(f"- {t}: {'ok' if ok else 'FAILED'}" for t, ok in verdicts.items()),
               f"- total: {time.perf_counter() - start:.0f} s", ""]
    text = "\n".join(report)
    print(text)
    if args.out:
        args.out.write_text(text)
    sys.exit(0 if all(verdicts.values()) else 1)


if __name__ == "__main__":
    main()
