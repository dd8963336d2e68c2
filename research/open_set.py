"""The open-set protocol: models trained on the seen classes only, scored on seen and unseen shapes with every class
name a candidate (generalized zero-shot), among the unseen names only, and by the harmonic mean H.

    # train (each run is `dual-denoising pretrain --recipe ... --train_on_seen_classes`, resumable; two at once)
    python research/open_set.py train --runs ulip-text dd-text dd-head-text
    # score every readout of the trained runs on split 1's validation shapes (seen: the carved validation split;
    # unseen: the unseen classes' shapes of the same rows, never trained on), then the chosen ones on the test split
    python research/open_set.py score --runs ulip-text dd-head-text --on validation
    python research/open_set.py score --runs ulip-text dd-head-text --on test --readouts chosen
    # the diagnostic ladder: the unseen shapes' embeddings against the span of the seen classes' targets
    python research/open_set.py ladder --runs dd-head-text ulip-text --readouts denoiser head regression
    # a run's readout as a model folder (for research/robustness_budgets.py)
    python research/open_set.py export --run dd-head-text --readout fusion:0.5 --out outputs/world/open-set/x

A run's name is MODEL-TARGET[-STEPS][-split2]: MODEL one of `RUNS`, TARGET `text`, `image` or `image+text` (the
teacher embedding the run learns: `feature_target`), STEPS the updates (default 800). Split 1's unseen classes are the dataset metadata's;
split 2's are `SPLIT_2` (drawn at random from split 1's seen classes, numpy seed 2, so that no class is unseen in
both and nobody picked them). Settings are chosen on split 1's validation shapes only; split 2 checks that the choice
carries over.

Readouts (`--readouts`): `denoiser` (the paper: one DDIM step from pure noise), `head` (the contrastive head, ULIP's
embedding), `fusion:W` (normalize(W head + (1 - W) denoiser)), `start:T` (the denoiser started from the head's
embedding noised to T, SDEdit), `smooth:T` (the head on 4 copies of the cloud with point noise at level T, their
embeddings averaged). `chosen` is, per run, the readout the rule picks on split 1's validation: the fusion
weight with the lowest cross-entropy of the seen validation shapes (a user's labels carry no seen/unseen flag, so
only seen shapes may choose), and the plain readouts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from dual_denoising.data import load_triples, load_triples_metadata  # noqa: E402
from dual_denoising.evaluation.zero_shot import class_embeddings, open_set_metrics, prepare_points  # noqa: E402
from dual_denoising.prompts import DEFAULT_TEMPLATES  # noqa: E402
from dual_denoising.shipped import load_model_and_tokenizer  # noqa: E402
from dual_denoising.training.data import VALIDATION_PER_CLASS, open_set_classes, validation_indices  # noqa: E402

# model -> (recipe, config overrides beside feature_target); they replace the recipe's own `config_overrides` (so `dd`
# is the method without a head, read from its denoiser, whatever the shipped recipe adds). The direct-alignment models
# (`ulip`, `ulip-noise`) align with image and text embeddings both whatever TARGET says (ULIP's loss; `feature_target`
# is the denoiser's): `ulip-image` trains bit for bit as `ulip-text` does.
RUNS = {
    "ulip": ("ulip-tiny", {}),
    "ulip-noise": ("ulip-noise-tiny", {"point_noise_augmentation": True}),
    "dd": ("dual-denoising-tiny", {}),
    "dd-head": ("dual-denoising-tiny", {"contrastive_head_weight": 1.0}),
    "dd-head4": ("dual-denoising-tiny", {"contrastive_head_weight": 4.0}),  # the ladder's pointer: more of the head
    # the noise control's pointer: point noise costs direct alignment the unseen classes, so half the clouds clean
    "dd-head-clean": ("dual-denoising-tiny", {"contrastive_head_weight": 1.0, "point_noise_clean_prob": 0.5}),
    # the reconstruction's share of the small encoder: a quarter of PointDAE's weight, the point noise kept
    "dd-head-rec": ("dual-denoising-tiny", {"contrastive_head_weight": 1.0, "lambda_rec": 0.25}),
}
SPLIT_2 = "bed,bookshelf,bottle,cone,door,monitor,plant,wardrobe"
FUSION_WEIGHTS = (0.25, 0.5, 0.75)
START_TIMESTEPS = (100, 250, 500, 750)


def parse_run(name: str) -> dict:
    """`dd-head-text-800-split2` -> model, target, steps, split."""
    parts = name.split("-")
    split = 2 if parts[-1] == "split2" else 1
    parts = parts[:-1] if split == 2 else parts
    steps = int(parts.pop()) if parts[-1].isdigit() else 800
    target = parts.pop()
    model = "-".join(parts)
    if model not in RUNS or target not in ("text", "image", "image+text"):
        raise SystemExit(f"{name}: a run is MODEL-TARGET[-STEPS][-split2], MODEL in {list(RUNS)}, TARGET text, image "
                         "or image+text")
    return {"model": model, "target": target, "steps": steps, "split": split}


def pretrain_command(work: Path, name: str) -> list[str]:
    run = parse_run(name)
    recipe, overrides = RUNS[run["model"]]
    command = [sys.executable, "-m", "dual_denoising.cli", "pretrain", "--recipe", recipe,
               "--dataset", str(work / "synthshapes"), "--teacher", str(work / "teacher"),
               "--output_dir", str(work / "open-set" / name), "--resume_from_checkpoint", "latest",
               "--report_to", "none", "--train_on_seen_classes", "--max_train_steps", str(run["steps"]),
               "--config_overrides", json.dumps({"feature_target": run["target"], **overrides})]
    return command + (["--unseen_classes", SPLIT_2] if run["split"] == 2 else [])


def train(work: Path, names: list[str], jobs: int) -> None:
    """Each run's `pretrain` (at most `jobs` at once, one core each), skipping the runs already trained."""
    pending = [name for name in names if not (work / "open-set" / name / "train_results.json").is_file()]
    running: list[tuple[str, subprocess.Popen]] = []
    (work / "open-set").mkdir(parents=True, exist_ok=True)
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            command = pretrain_command(work, name)
            print(f"training {name}: {' '.join(command[1:])}", flush=True)
            log = open(work / "open-set" / f"{name}.log", "a")
            running.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                   env={**os.environ, "OMP_NUM_THREADS": "1"})))
        time.sleep(5)
        for name, process in list(running):
            if process.poll() is not None:
                running.remove((name, process))
                if process.returncode:
                    raise SystemExit(f"training {name} failed: see {work / 'open-set' / (name + '.log')}")
                print(f"trained {name}", flush=True)


def readouts_of(model, wanted: list[str]) -> list[str]:
    """The readouts a model has: the baseline has its head only; the method its denoiser, and with a head the rest."""
    if model.config.objective == "contrastive":
        return ["head"]
    if not hasattr(model, "projection"):
        return ["denoiser"]
    return wanted or (["denoiser", "head"] + [f"fusion:{w}" for w in FUSION_WEIGHTS]
                      + [f"start:{t}" for t in START_TIMESTEPS])


def readout_options(readout: str) -> dict:
    kind, _, value = readout.partition(":")
    if kind == "fusion":
        return {"readout": "fusion", "fusion_weight": float(value)}
    if kind == "start":
        return {"readout": "denoiser", "start_timestep": int(value)}
    if kind == "smooth":  # the head on K = 4 copies of the cloud noised at level T, as the encoder saw them in training
        return {"readout": "head", "inference_point_noise_level": int(value), "num_noise_samples": 4}
    return {"readout": kind}


def rows_of(work: Path, on: str):
    """The clouds and labels scored: split 1's validation rows (the last 16 training shapes of every class; the
    unseen classes' ones were never trained on) or the test split."""
    if on == "validation":
        train = load_triples(work / "synthshapes", split="train")
        rows = train.select(validation_indices(train["label"], VALIDATION_PER_CLASS).tolist())
    else:
        rows = load_triples(work / "synthshapes", split="test")
    return rows


@torch.no_grad()
def score(model, tokenizer, rows, unseen: list[str], readout: str, batch_size: int = 32, seed: int = 0) -> dict:
    model.eval()
    names = rows.features["label"].names
    class_embeds = F.normalize(class_embeddings(model, names, tokenizer, DEFAULT_TEMPLATES).float(), dim=-1)
    labels = torch.as_tensor(rows["label"])
    options = readout_options(readout)
    generator = torch.Generator().manual_seed(seed)
    logits, tic = [], time.perf_counter()
    for start in range(0, len(rows), batch_size):
        points = prepare_points(rows[start:start + batch_size]["points"], model.config.point_config.num_points)
        features = model.get_point_features(points, generator=generator, **options)
        logits.append(model.logit_scale.exp().float() * features @ class_embeds.T)
    seconds = time.perf_counter() - tic
    logits = torch.cat(logits)
    seen_rows = ~torch.isin(labels, torch.as_tensor([names.index(n) for n in unseen]))
    nll = F.cross_entropy(logits[seen_rows], labels[seen_rows]).item()
    return {**open_set_metrics(logits, labels, names, unseen), "seen_cross_entropy": nll,
            "top1_all": (logits.argmax(1) == labels).float().mean().item(), "ms_per_cloud": 1000 * seconds / len(rows),
            "predictions": logits.argmax(1).tolist()}


RIDGE_PENALTIES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


@torch.no_grad()
def pooled_features(model, rows, batch_size: int = 64) -> torch.Tensor:
    """`(M, 2W)`: the encoder's last states, layer-normed (the head's `final_norm` where the model has one), pooled
    as ULIP's head pools them, `[CLS ; max over groups]`."""
    out = []
    for start in range(0, len(rows), batch_size):
        points = prepare_points(rows[start:start + batch_size]["points"], model.config.point_config.num_points)
        hidden = model.encode(points)[-1].float()
        hidden = model.final_norm(hidden).float() if hasattr(model, "final_norm") else F.layer_norm(hidden, hidden.shape[-1:])
        out.append(torch.cat([hidden[:, 0], hidden[:, 1:].amax(dim=1)], dim=-1))
    return torch.cat(out)


def shape_targets(rows, target: str) -> torch.Tensor:
    """`(M, D)`: each shape's teacher target, normalized: the mean of its captions' (text) or views' (image)
    embeddings."""
    column = "text_embeds" if target == "text" else "image_embeds"
    return F.normalize(torch.stack([F.normalize(torch.as_tensor(e), dim=-1).mean(0) for e in rows[column]]), dim=-1)


@torch.no_grad()
def fit_regression_head(model, train, seen_ids: list[int], target: str, class_embeds: torch.Tensor) -> dict:
    """The ladder's plain regression head: ridge regression from the frozen encoder's pooled features to the
    teacher targets, fitted on the seen classes' training shapes (the validation rows held out); the penalty is the
    one whose seen validation shapes have the lowest cross-entropy (never the unseen ones)."""
    labels = torch.as_tensor(train["label"])
    held_out = torch.as_tensor(validation_indices(train["label"], VALIDATION_PER_CLASS))
    seen = torch.isin(labels, torch.as_tensor(seen_ids))
    fit = seen.clone()
    fit[held_out] = False
    check = torch.zeros_like(seen)
    check[held_out] = True
    check &= seen
    x_fit, x_check = pooled_features(model, train.select(fit.nonzero().squeeze(1).tolist())), \
        pooled_features(model, train.select(check.nonzero().squeeze(1).tolist()))
    y_fit = shape_targets(train.select(fit.nonzero().squeeze(1).tolist()), target)
    mean, scale = x_fit.mean(0), x_fit.std(0) + 1e-6
    x = torch.cat([(x_fit - mean) / scale, torch.ones(len(x_fit), 1)], dim=1).double()
    best = None
    for penalty in RIDGE_PENALTIES:
        weights = torch.linalg.solve(x.T @ x + penalty * len(x) * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y_fit.double())
        predict = lambda feats, w=weights: F.normalize(  # noqa: E731
            (torch.cat([(feats - mean) / scale, torch.ones(len(feats), 1)], dim=1).double() @ w).float(), dim=-1)
        logits = model.logit_scale.exp().float() * predict(x_check) @ class_embeds.T
        nll = F.cross_entropy(logits, labels[check]).item()
        if best is None or nll < best["seen_cross_entropy"]:
            best = {"penalty": penalty, "seen_cross_entropy": nll, "predict": predict}
    return best


@torch.no_grad()
def ladder(model, tokenizer, rows, unseen: list[str], readouts: list[str], target: str, train=None,
           batch_size: int = 32) -> dict:
    """The diagnostic ladder on one trained encoder, over the unseen classes' shapes: for each readout (`regression`:
    a ridge head fitted on the frozen encoder, `fit_regression_head`), the unseen shapes' top-1 with every name a
    candidate and among the unseen names only, how much of the embedding lies outside the span of the seen classes'
    text embeddings (the norm of the residual of the least-squares projection, of a unit vector; 0 = inside the
    span), how far it is from its own class's text embedding (cosine), and which seen classes absorb the unseen shapes
    (the top-3 and their counts)."""
    model.eval()
    names = rows.features["label"].names
    class_embeds = F.normalize(class_embeddings(model, names, tokenizer, DEFAULT_TEMPLATES).float(), dim=-1)
    seen_ids = [i for i, n in enumerate(names) if n not in unseen]
    unseen_ids = torch.as_tensor([names.index(n) for n in unseen])
    basis = torch.linalg.qr(class_embeds[seen_ids].T).Q  # (D, 24): an orthonormal basis of the seen targets' span
    labels = torch.as_tensor(rows["label"])
    keep = torch.isin(labels, unseen_ids).nonzero().squeeze(1).tolist()
    unseen_rows = rows.select(keep)
    unseen_labels = torch.as_tensor(unseen_rows["label"])
    out = {}
    for readout in readouts:
        extra = {}
        if readout == "regression":
            head = fit_regression_head(model, train, seen_ids, target, class_embeds)
            feats = head["predict"](pooled_features(model, unseen_rows))
            extra = {"ridge_penalty": head["penalty"], "seen_validation_cross_entropy": head["seen_cross_entropy"]}
        else:
            generator = torch.Generator().manual_seed(0)
            feats = []
            for start in range(0, len(unseen_rows), batch_size):
                points = prepare_points(unseen_rows[start:start + batch_size]["points"],
                                        model.config.point_config.num_points)
                feats.append(model.get_point_features(points, generator=generator, **readout_options(readout)))
            feats = torch.cat(feats).float()
        residual = (feats - (feats @ basis) @ basis.T).norm(dim=1)
        own = (feats * class_embeds[unseen_labels]).sum(1)
        similarity = feats @ class_embeds.T
        predicted = similarity.argmax(1)
        among_unseen = unseen_ids[similarity[:, unseen_ids].argmax(1)]
        absorbed = torch.bincount(predicted[torch.isin(predicted, torch.as_tensor(seen_ids))], minlength=len(names))
        top = absorbed.argsort(descending=True)[:3]
        out[readout] = {"unseen_top1": float((predicted == unseen_labels).float().mean()),
                        "unseen_only_top1": float((among_unseen == unseen_labels).float().mean()),
                        "residual_outside_seen_span": residual.mean().item(), "cosine_to_own_class": own.mean().item(),
                        "share_named_as_a_seen_class": float(torch.isin(predicted, torch.as_tensor(seen_ids)).float().mean()),
                        "absorbing_seen_classes": {names[i]: int(absorbed[i]) for i in top.tolist() if absorbed[i] > 0},
                        "num_shapes": len(unseen_rows), **extra}
    # the unseen classes' own text embeddings, for scale: how far outside the seen span a right answer lies
    own_text = class_embeds[unseen_ids]
    out["the unseen classes' text embeddings"] = {
        "residual_outside_seen_span": (own_text - (own_text @ basis) @ basis.T).norm(dim=1).mean().item()}
    return out


def chosen_readouts(table: dict, name: str) -> list[str]:
    """The rule, on split 1's validation rows: the plain readouts, and the fusion weight whose seen validation
    shapes have the lowest cross-entropy (never the unseen rows)."""
    rows = table.get("validation", {}).get(name.replace("-split2", ""), {})
    if not rows:
        raise SystemExit(f"{name}: score it on the validation split first (score --on validation)")
    plain = [r for r in rows if not r.startswith(("fusion:", "start:", "smooth:"))]
    fusions = [r for r in rows if r.startswith("fusion:")]
    best = min(fusions, key=lambda r: rows[r]["seen_cross_entropy"]) if fusions else None
    return plain + ([best] if best else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["train", "score", "ladder", "export"])
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/world"))
    parser.add_argument("--runs", nargs="+", default=[])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--on", choices=["validation", "test"], default="validation")
    parser.add_argument("--readouts", nargs="*", default=[],
                        help="denoiser, head, fusion:W, start:T, smooth:T, or 'chosen' (default: every readout of "
                        "the run)")
    parser.add_argument("--table", type=Path, default=None, help="default: WORK_DIR/tables/open-set.json")
    parser.add_argument("--run", default=None, help="export: the run")
    parser.add_argument("--readout", default=None, help="export: the readout to store in the model's config")
    parser.add_argument("--out", type=Path, default=None, help="export: the model folder to write")
    args = parser.parse_args()
    work = args.work_dir
    if args.stage == "train":
        return train(work, args.runs, args.jobs)
    if args.stage == "export":
        model, tokenizer = load_model_and_tokenizer(str(work / "open-set" / args.run))
        options = readout_options(args.readout)
        model.config.zero_shot_readout = options["readout"]
        model.config.readout_fusion_weight = options.get("fusion_weight", model.config.readout_fusion_weight)
        model.config.denoiser_start_timestep = options.get("start_timestep")
        model.config.inference_point_noise_level = options.get("inference_point_noise_level", 0)
        model.config.num_noise_samples = options.get("num_noise_samples", model.config.num_noise_samples)
        model.config.validate_architecture()
        model.save_pretrained(args.out)
        tokenizer.save_pretrained(args.out)
        return print(f"wrote {args.out}")

    if args.stage == "ladder":
        rows = rows_of(work, args.on)
        metadata = load_triples_metadata(work / "synthshapes")
        out = args.out or work / "tables" / f"open-set-ladder-{args.on}.json"
        result = json.loads(out.read_text()) if out.is_file() else {}  # other runs' rungs stay
        train_rows = load_triples(work / "synthshapes", split="train")
        for name in args.runs:
            model, tokenizer = load_model_and_tokenizer(str(work / "open-set" / name))
            _, unseen = open_set_classes(metadata, rows.features["label"].names,
                                         SPLIT_2 if parse_run(name)["split"] == 2 else None)
            wanted = [r for r in args.readouts if r != "regression"]
            readouts = readouts_of(model, wanted) + (["regression"] if "regression" in args.readouts else [])
            result[name] = ladder(model, tokenizer, rows, unseen, readouts, parse_run(name)["target"], train_rows)
        out.write_text(json.dumps(result, indent=1) + "\n")
        return print(json.dumps({name: result[name] for name in args.runs}, indent=1))
    table_path = args.table or work / "tables" / "open-set.json"
    table = json.loads(table_path.read_text()) if table_path.is_file() else {}
    rows = rows_of(work, args.on)
    metadata = load_triples_metadata(work / "synthshapes")
    for name in args.runs:
        run = parse_run(name)
        model, tokenizer = load_model_and_tokenizer(str(work / "open-set" / name))
        _, unseen = open_set_classes(metadata, rows.features["label"].names, SPLIT_2 if run["split"] == 2 else None)
        wanted = chosen_readouts(table, name) if args.readouts == ["chosen"] else args.readouts
        cells = table.setdefault(args.on, {}).setdefault(name, {})
        for readout in readouts_of(model, wanted):
            if readout in cells:
                continue
            torch.manual_seed(0)
            cells[readout] = score(model, tokenizer, rows, unseen, readout)
            save_cell(table_path, args.on, name, readout, cells[readout])
        print_table(table, args.on, [name])


def save_cell(table_path: Path, on: str, name: str, readout: str, cell: dict) -> None:
    """Write one scored cell into the table as it is on disk now (read again, replaced whole), so that two `score`
    commands at once keep each other's cells."""
    table = json.loads(table_path.read_text()) if table_path.is_file() else {}
    table.setdefault(on, {}).setdefault(name, {})[readout] = cell
    table_path.parent.mkdir(parents=True, exist_ok=True)
    partial = table_path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(table, indent=1) + "\n")
    partial.replace(table_path)


def print_table(table: dict, on: str, names: list[str]) -> None:
    def pct(cell, key):
        figure = cell[key]
        low, high = figure["interval"]
        return f"{100 * figure['accuracy']:.1f} [{100 * low:.0f}, {100 * high:.0f}]"

    print(f"| run | readout | seen | unseen | unseen-only | H | seen CE | ms / cloud |  ({on})")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        for readout, cell in table.get(on, {}).get(name, {}).items():
            print(f"| {name} | {readout} | {pct(cell, 'seen')} | {pct(cell, 'unseen')} | {pct(cell, 'unseen_only')} | "
                  f"{pct(cell, 'harmonic_mean')} | {cell['seen_cross_entropy']:.3f} | {cell['ms_per_cloud']:.1f} |")


if __name__ == "__main__":
    main()
