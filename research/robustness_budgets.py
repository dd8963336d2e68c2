"""Clean and adversarial zero-shot accuracy of trained models side by side, with Wilson 95% intervals (the robustness
tables of docs/results.md).

    python research/robustness_budgets.py --work-dir outputs/world --out outputs/world/tables/800.json \
        --model "ULIP baseline=outputs/world/runs/contrastive_800" \
        --model "Dual Denoising=outputs/world/runs/dd_800" --robust-samples 128 --eps 0.01 0.02 --eot 4

For every model: clean top-1 on the whole test split (or, with --split validation, on the validation split settings are
chosen on), and on a seeded subset of --robust-samples of those shapes (the same for every model) PGD-Linf at each
--eps:
  adaptive     gradients through the whole inference chain (encoder, K chains, S DDIM steps), EOT over --eot noise
               draws per step, scored with a fresh draw: the headline;
  fixed        fixed randomness: one noise draw, the same at attack and at test time (a white-box attack on a
               deterministic function; for a stochastic model the robust accuracy is the minimum of the two);
  long         the adaptive attack with --long-steps steps instead of --steps (does robust accuracy still fall?), at
               --long-eps; on stochastic models only with --long-stochastic (it costs --eot times more there).
  transfer     with --transfer-from: the clouds attacked on another (deterministic) model, scored on this one.
Deterministic models (the contrastive baselines) get one attack per eps (EOT and fixed randomness are the same).
Also: milliseconds per cloud of clean inference (batch 64, this machine's threads). The JSON is written after every
batch of every attack, and a rerun with the same --out (and --batch-size) resumes: finished attacks are kept, not
recomputed, and a stopped one goes on from its next batch (so a later command can add --long-eps, --transfer-from or
a fixed attack skipped before to a finished row, and an attack of several hours can span several sittings). Every
summary keeps which shapes were right ("right": "0110...", in subset order).
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
from transformers import AutoTokenizer  # noqa: E402

from dual_denoising import DualDenoisingModel  # noqa: E402
from dual_denoising.data import load_triples  # noqa: E402
from dual_denoising.evaluation import class_embeddings, wilson_interval  # noqa: E402
from dual_denoising.evaluation.attacks import PGDLinf, ZeroShotClassifier  # noqa: E402
from dual_denoising.point_ops import normalize_to_unit_sphere  # noqa: E402
from dual_denoising.training import validation_indices  # noqa: E402


class FixedRandomnessClassifier(ZeroShotClassifier):
    """The model with its noise frozen: every call draws from a generator re-seeded with `noise_seed`, so the attack
    and the scoring see the same function (deterministic, so attacks query it once per step)."""

    def __init__(self, *args, noise_seed: int = 1234, **kwargs):
        super().__init__(*args, stochastic=False, **kwargs)
        self.noise_seed = noise_seed

    def logits(self, points, generator=None):
        self.stochastic = True  # pass a generator to the model ...
        try:
            return super().logits(points, torch.Generator().manual_seed(self.noise_seed))
        finally:
            self.stochastic = False  # ... but tell the attacks that one query is enough

    __call__ = logits


def accuracy(classifier, points, labels, batch_size: int, seed: int) -> np.ndarray:
    """`(B,)` booleans: top-1 right, each batch scored with its own fresh seeded draw."""
    right = []
    with torch.no_grad():
        for i, start in enumerate(range(0, len(points), batch_size)):
            chunk = slice(start, start + batch_size)
            logits = classifier(points[chunk], generator=torch.Generator().manual_seed(seed + i))
            right.append((logits.argmax(1) == labels[chunk]).numpy())
    return np.concatenate(right)


def attacked(attack, classifier, points, labels, batch_size: int) -> torch.Tensor:
    return torch.cat([_attack_batch(attack, classifier, points, labels, batch_size, i)
                      for i in range(-(-len(points) // batch_size))])


def _attack_batch(attack, classifier, points, labels, batch_size: int, i: int) -> torch.Tensor:
    """Batch `i` attacked with its own seeded generator (so a batch gives the same clouds alone or in a run)."""
    chunk = slice(i * batch_size, (i + 1) * batch_size)
    return attack(classifier, points[chunk], labels[chunk], generator=torch.Generator().manual_seed(100 + i))


def attack_accuracy(attack, classifier, points, labels, batch_size: int, seed: int, progress: dict,
                    checkpoint=None) -> np.ndarray:
    """`(B,)` booleans: top-1 right on the attacked clouds, batch by batch. Batch i is attacked and scored exactly as
    `accuracy(classifier, attacked(...), ..., seed)` would (the same seeds), but `progress` keeps each finished batch
    (`{"batch_size": b, "right": ["0110...", ...]}`) and `checkpoint()` is called after each, so a run stopped
    mid-attack resumes at the next batch (a 100-step attack through a stochastic chain can take hours)."""
    if progress.get("batch_size") != batch_size:  # batches of another size are another computation: start over
        progress.clear()
        progress.update(batch_size=batch_size, right=[])
    for i in range(len(progress["right"]), -(-len(points) // batch_size)):
        adversarial = _attack_batch(attack, classifier, points, labels, batch_size, i)
        with torch.no_grad():
            logits = classifier(adversarial, generator=torch.Generator().manual_seed(seed + i))
        right = logits.argmax(1) == labels[i * batch_size:(i + 1) * batch_size]
        progress["right"].append(bits(right))
        if checkpoint is not None:
            checkpoint()
    return np.array([c == "1" for c in "".join(progress["right"])])


def bits(right) -> str:
    """`(B,)` booleans as `"0110..."`: the form in which a cell keeps which shapes were right."""
    return "".join("1" if r else "0" for r in right.tolist())


def summary(right: np.ndarray) -> dict:
    """Accuracy with its Wilson 95% interval, and which shapes were right (`"0110..."`, in subset order, so a cell on
    the first n shapes of a larger subset can be read off without rerunning it)."""
    low, high = wilson_interval(int(right.sum()), len(right))
    return {"accuracy": float(right.mean()), "low": low, "high": high, "n": len(right),
            "right": bits(right)}


def evaluate_model(model_dir: Path, points, labels, names, args, row: dict | None = None, save=None,
                   transfer: dict | None = None) -> dict:
    """One model's row. `row` holds cells of an earlier, unfinished run of the same row (reused, not recomputed);
    `save(row)` is called after every cell, so a stopped run resumes where it stopped; `transfer` maps eps to
    adversarial clouds crafted on another model (the transfer attack)."""
    model = DualDenoisingModel.from_pretrained(model_dir).eval()
    method = model.config.objective == "dual_denoising"
    stochastic = method or args.inference_point_noise_level > 0
    feature_kwargs = ({"num_noise_samples": args.num_noise_samples, "num_inference_steps": args.num_inference_steps}
                      if method else {})
    if args.inference_point_noise_level > 0:  # randomized smoothing: K noisy copies through the encoder
        feature_kwargs.update(num_noise_samples=args.num_noise_samples, inference_point_noise_level=args.inference_point_noise_level)
    if args.purification_rounds > 0:
        feature_kwargs["purification_rounds"] = args.purification_rounds
        if args.purification_level is not None:
            feature_kwargs["purification_noise_level"] = args.purification_level
        if args.purification_keep_input:
            feature_kwargs["purification_keep_input"] = True
    with torch.no_grad():
        class_embeds = class_embeddings(model, names, AutoTokenizer.from_pretrained(model_dir))
    classifier = ZeroShotClassifier(model, class_embeds, stochastic=stochastic, **feature_kwargs)
    row = dict(row or {})
    if "clean" not in row:
        start = time.perf_counter()
        clean = accuracy(classifier, points, labels, 64, seed=0)
        row.update(model=model_dir.name, objective=model.config.objective, feature_kwargs=feature_kwargs,
                   clean=summary(clean), ms_per_cloud=1000 * (time.perf_counter() - start) / len(points))
    subset = robust_subset(len(points), args)
    sub_points, sub_labels = points[subset], labels[subset]
    if "subset_clean" not in row:
        row["subset_clean"] = summary(accuracy(classifier, sub_points, sub_labels, args.batch_size, seed=0))
    for eps in args.eps:
        key = f"pgd_linf_{eps}"
        cell = dict(row.get(key, {}))  # attacks finished by an earlier run are kept, a stopped one is resumed

        def run(kind: str, attack, scored, seed: int) -> dict:
            """`kind`'s summary, attacked batch by batch; its finished batches are saved under cell["partial"]."""
            progress = cell.setdefault("partial", {}).setdefault(kind, {})
            right = attack_accuracy(attack, scored, sub_points, sub_labels, args.batch_size, seed, progress,
                                    checkpoint=None if save is None else lambda: save({**row, key: cell}))
            del cell["partial"][kind]
            if not cell["partial"]:
                del cell["partial"]
            return summary(right)

        if not missing_attacks(cell, eps, args, stochastic, transfer is not None):
            continue
        if transfer is not None and "transfer" not in cell:
            cell["transfer"] = summary(accuracy(classifier, transfer[eps], sub_labels, args.batch_size, seed=5000))
        if "adaptive" not in cell:
            cell["adaptive"] = run("adaptive", PGDLinf(eps=eps, steps=args.steps, eot_samples=args.eot if stochastic
                                                       else 1), classifier, seed=5000)
            if not stochastic:  # no noise to fix: the adaptive attack is the white-box attack
                cell["fixed"] = cell["adaptive"]
        if stochastic and not args.skip_fixed and "fixed" not in cell:
            fixed = FixedRandomnessClassifier(model, class_embeds, **feature_kwargs)
            cell["fixed"] = run("fixed", PGDLinf(eps=eps, steps=args.steps), fixed, seed=0)
        if "adaptive" in cell:
            cell["robust"] = min((cell[k] for k in ("adaptive", "fixed") if k in cell), key=lambda c: c["accuracy"])
        if "long" not in cell and long_attack_wanted(eps, args, stochastic):
            cell["long"] = run("long", PGDLinf(eps=eps, steps=args.long_steps, eot_samples=args.eot if stochastic
                                               else 1), classifier, seed=5000)
        row[key] = cell
        print(f"  {model_dir.name} eps {eps}: " + ", ".join(f"{k} {100 * v['accuracy']:.1f}" for k, v in cell.items()),
              flush=True)
        if save is not None:
            save(row)
    return row


def long_attack_wanted(eps: float, args, stochastic: bool) -> bool:
    return eps in args.long_eps and (not stochastic or args.long_stochastic)


def missing_attacks(cell: dict, eps: float, args, stochastic: bool, transfer: bool) -> bool:
    """Whether the cell of `eps` still lacks an attack this command asks for (so a later command can add the long,
    the fixed or the transfer attack to a row finished without it)."""
    return ("adaptive" not in cell or ("long" not in cell and long_attack_wanted(eps, args, stochastic))
            or (stochastic and not args.skip_fixed and "fixed" not in cell) or (transfer and "transfer" not in cell))


def robust_subset(num_points: int, args) -> torch.Tensor:
    """The seeded --robust-samples shapes every model is attacked on (the same for every model and run)."""
    return torch.as_tensor(np.random.default_rng(0).permutation(num_points)[: args.robust_samples])


def transfer_adversarials(source_dir: Path, points, labels, names, args) -> dict:
    """eps -> the robust subset attacked on `source_dir`'s model (deterministic PGD-Linf, --steps steps): the
    transfer attack, a sanity check that the adaptive attack on a stochastic model is not weaker than a black-box
    one."""
    model = DualDenoisingModel.from_pretrained(source_dir).eval()
    if model.config.objective != "contrastive":
        raise SystemExit(f"--transfer-from wants a deterministic (contrastive) model; {source_dir} is "
                         f"{model.config.objective}")
    with torch.no_grad():
        class_embeds = class_embeddings(model, names, AutoTokenizer.from_pretrained(source_dir))
    classifier = ZeroShotClassifier(model, class_embeds)
    subset = robust_subset(len(points), args)
    return {eps: attacked(PGDLinf(eps=eps, steps=args.steps), classifier, points[subset], labels[subset],
                          args.batch_size) for eps in args.eps}


def pct(cell: dict | None) -> str:
    if cell is None:
        return "-"
    return f"{100 * cell['accuracy']:.1f} [{100 * cell['low']:.0f}, {100 * cell['high']:.0f}]"


def markdown(rows: dict, eps: list[float]) -> str:
    head = "| model | clean top-1 | " + " | ".join(f"PGD-Linf {e}: adaptive / fixed / long / transfer" for e in eps)
    lines = [head + " | ms / cloud |", "|---|---:|" + "---:|" * len(eps) + "---:|"]
    for name, row in rows.items():
        cells = []
        for e in eps:
            c = row.get(f"pgd_linf_{e}", {})
            cells.append(" / ".join(pct(c.get(k)) for k in ("adaptive", "fixed", "long", "transfer")))
        lines.append(f"| {name} | {pct(row['clean'])} | " + " | ".join(cells) + f" | {row['ms_per_cloud']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/world"))
    parser.add_argument("--model", action="append", required=True, help="NAME=FOLDER (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="JSON results (rows already there are reused)")
    parser.add_argument("--robust-samples", type=int, default=64)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.02])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--long-steps", type=int, default=100)
    parser.add_argument("--long-eps", type=float, nargs="*", default=[], help="eps at which to run the long attack")
    parser.add_argument("--long-stochastic", action="store_true",
                        help="run the long attack on stochastic models too (with EOT: --long-steps x --eot passes)")
    parser.add_argument("--eot", type=int, default=4)
    parser.add_argument("--skip-fixed", action="store_true")
    parser.add_argument("--num-noise-samples", type=int, default=1, help="K for Dual Denoising models")
    parser.add_argument("--num-inference-steps", type=int, default=1, help="S for Dual Denoising models")
    parser.add_argument("--inference-point-noise-level", type=int, default=0,
                        help="randomized smoothing: point noise at this level t_in, --num-noise-samples noisy copies")
    parser.add_argument("--purification-rounds", type=int, default=0,
                        help="PointDAE purification rounds before encoding (Dual Denoising models)")
    parser.add_argument("--purification-level", type=int, default=None,
                        help="the point-noise level t of each purification round (default: the model's config)")
    parser.add_argument("--purification-keep-input", action="store_true",
                        help="with purification, average the embeddings of the cloud as given and of the purified one")
    parser.add_argument("--split", choices=["test", "validation"], default="test",
                        help="validation: the last 16 training shapes of every class (for choosing settings)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--transfer-from", type=Path, default=None,
                        help="a contrastive model folder: also score every model on clouds attacked on it (transfer)")
    args = parser.parse_args()

    test = load_triples(args.work_dir / "synthshapes-1024", split="train" if args.split == "validation" else "test")
    if args.split == "validation":
        test = test.select(validation_indices(test["label"]).tolist())
    test = test.with_format("numpy")
    points = normalize_to_unit_sphere(torch.as_tensor(np.stack(test["points"])).float())
    labels = torch.as_tensor(np.asarray(test["label"]))
    names = test.features["label"].names
    rows = json.loads(args.out.read_text()) if args.out.is_file() else {}
    settings = {k: (v.name if isinstance(v, Path) else v) for k, v in vars(args).items()  # folder names, not paths
                if k not in ("model", "out", "work_dir")}

    def save(name: str, row: dict) -> None:
        rows[name] = {**row, "command_settings": settings}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")

    transfer = None
    for spec in args.model:
        name, _, folder = spec.partition("=")
        if name in rows:  # a finished row is skipped without loading its model
            stochastic = rows[name]["objective"] == "dual_denoising" or args.inference_point_noise_level > 0
            if not any(missing_attacks(rows[name].get(f"pgd_linf_{eps}", {}), eps, args, stochastic,
                                       args.transfer_from is not None) for eps in args.eps):
                continue
        if args.transfer_from is not None and transfer is None:  # once, and only if some cell is still to do
            print(f"crafting transfer adversarials on {args.transfer_from}", flush=True)
            transfer = transfer_adversarials(args.transfer_from, points, labels, names, args)
        print(f"{name}: {folder}" + (" (resuming)" if name in rows else ""), flush=True)
        row = evaluate_model(Path(folder), points, labels, names, args, row=rows.get(name),
                             save=lambda r, name=name: save(name, r), transfer=transfer)
        save(name, row)
    print(markdown(rows, args.eps))


if __name__ == "__main__":
    main()
