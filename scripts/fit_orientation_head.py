"""Fit the orientation head that `up_axis="auto"` reads, on a pretrained model's frozen encoder.

    python scripts/fit_orientation_head.py --work-dir outputs/world --model ulip-noise-tiny --out runs/ulip-noise-orient
    python scripts/fit_orientation_head.py --work-dir outputs/world --model runs/ulip-noise-orient --reuse-head \
        --pack ulip-noise-tiny                                          # into the shipped copy

The head (`DualDenoisingOrientationHead`, `dual_denoising.training.fit_orientation_head`) learns which of the 24
axis-aligned rotations turns a cloud upright, from the training shapes of SynthShapes minus the validation split
(each shown in --views-per-cloud orientations). The encoder is not touched. Then, on the validation split (the last 16
training shapes of every class, 512 clouds):
  - the head alone, every cloud in all 24 orientations: the share whose turn is predicted exactly, and the share whose
    predicted turn brings the up direction back to +y (what matters for a shape symmetric about its up axis);
  - the confidence weight w, the identity prior b and the keep threshold tau of `choose_orientation`
    (`config.orientation_confidence_weight`, `orientation_identity_prior`, `orientation_keep_threshold`), from
    zero-shot top-1 of the clouds as they are ("upright") and of every cloud in each of the 24 orientations ("any up
    axis", 24 x 512 readings: a cloud turned by one rotation and then by another is the upright cloud turned by their
    product, so the classifier's 24 readings of each cloud serve every turn; the head reads each turned cloud anew),
    for w in WEIGHTS, b in PRIORS and tau in THRESHOLDS. Kept, by `choose_rule`: among the settings within half a
    point of the best on the turned clouds and at most half a point below reading the upright ones as given, the one
    that turns the fewest upright clouds away from how they were given ("keep the reading unless another is clearly
    better": a turned reading of an upright cloud is a risk even where the 512 validation clouds show no loss); if no
    setting is within both, the best on the turned clouds of those within half a point on the upright ones. The
    clouds' 48 readings are cached beside the --model folder (`FOLDER-readings.pt`) with --reuse-head (not
    beside a shipped model).

--model takes a shipped model's short name or a from_pretrained folder. --out saves the model with its head in a new
folder; --pack NAME writes it into the package's shipped copy NAME (float16 weights, as the recipe stores them; every
weight but the head's must be that model's) and records all of the above in its metadata.json.
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

from dual_denoising import DualDenoisingModel  # noqa: E402
from dual_denoising.data import load_triples  # noqa: E402
from dual_denoising.evaluation import class_embeddings, per_orientation_logits, prepare_points  # noqa: E402
from dual_denoising.orientations import COMPOSE, ORIENTATIONS, choose_orientation, every_orientation  # noqa: E402
from dual_denoising.shipped import PRETRAINED_DIR, load_model_and_tokenizer, shipped_models  # noqa: E402
from dual_denoising.training import fit_orientation_head, validation_indices  # noqa: E402
from dual_denoising.training.recipes import save_shipped_weights  # noqa: E402

WEIGHTS = (None, 0, 1, 2, 4, 8, 16, 32)  # None: without the head, the most confident orientation
PRIORS = (0, 1, 2, 4, 8, 16, 32)  # b, the identity prior, in log units of the rule's score
THRESHOLDS = (1.0, 0.9, 0.7, 0.5, 0.3, 0.2)  # tau: keep the cloud as given when the head says so this surely (1: off)
TOLERANCE = 0.005  # half a point: on the upright clouds against reading them as given, on the turned ones against the best


def resolve(model: str) -> tuple[str, Path]:
    if model in shipped_models():
        return model, PRETRAINED_DIR / model
    folder = Path(model)
    if not (folder / "config.json").is_file():
        raise SystemExit(f"--model {model}: neither a shipped model ({', '.join(shipped_models())}) nor a folder "
                         "with a config.json")
    return folder.name, folder


@torch.no_grad()
def orientation_readings(model, class_embeds, clouds: torch.Tensor, batch_size: int = 8) -> dict:
    """The 48 readings per upright cloud `choose_rule` needs: `logits` `(M, 24, C)`, the zero-shot logits of the cloud
    turned by each of the 24 `ORIENTATIONS`, and `turn_logits` `(M, 24, 24)`, the head's logits for the cloud shown
    turned by each."""
    logits = per_orientation_logits(model, class_embeds, clouds)
    turn_logits = torch.cat([model.get_orientation_logits(every_orientation(chunk).flatten(0, 1)).unflatten(0, (
        len(chunk), len(ORIENTATIONS))) for chunk in clouds.split(batch_size)])
    return {"logits": logits, "turn_logits": turn_logits}


def rule_scores(readings: dict, labels: torch.Tensor, weight: float | None, prior: float, threshold: float) -> dict:
    """One setting of `choose_orientation` on the cached readings: top-1 of the upright clouds, top-1 over every cloud
    shown in each of the 24 orientations, and the share of upright clouds it turns away from how they were given."""
    logits, turn_logits = readings["logits"], readings["turn_logits"]
    rows, correct, picks = torch.arange(len(labels)), [], []
    for shown in range(len(ORIENTATIONS)):
        candidates = torch.as_tensor(COMPOSE[:, shown])  # candidate o of the cloud shown turned = ORIENTATIONS[o @ shown]
        picks.append(choose_orientation(logits[:, candidates], None if weight is None else turn_logits[:, shown],
                                        weight or 0.0, prior, threshold))
        correct.append(logits[rows, candidates[picks[-1]]].argmax(-1) == labels)
    correct = torch.stack(correct).float()
    return {"upright": float(correct[0].mean()), "any up axis": float(correct.mean()),
            "upright turned away": float((picks[0] != 0).float().mean())}  # shown 0: the clouds as given


def head_scores(readings: dict) -> dict:
    """The head alone, every validation cloud shown in all 24 orientations: the share whose turn it names exactly,
    and the share whose named turn brings the up direction back to +y (what matters for a shape symmetric about its
    up axis)."""
    predicted = readings["turn_logits"].argmax(-1).numpy()  # (M, 24): the turn named for the cloud shown turned by t
    shown = np.broadcast_to(np.arange(len(ORIENTATIONS)), predicted.shape)
    result = ORIENTATIONS[COMPOSE[predicted, shown]]  # the cloud after the named turn, as a turn of the upright cloud
    return {"turn_accuracy": float((COMPOSE[predicted, shown] == 0).mean()),
            "up_accuracy": float(np.isclose(result[..., 1, 1], 1.0).mean()),  # +y stays +y
            "views": predicted.size}


def choose_rule(readings: dict, labels: torch.Tensor, tolerance: float = TOLERANCE) -> dict:
    """The setting (w, b, tau) of `choose_orientation` kept (see the module's docstring), with every setting's
    figures. If no setting is within `tolerance` of both, the best on the turned clouds of those within it on the
    upright ones; if none is, the best on the upright ones."""
    as_given = float((readings["logits"][:, 0].argmax(-1) == labels).float().mean())  # orientation 0: the identity
    table, row_of = {}, {}
    for weight in WEIGHTS:
        for prior in PRIORS:
            for threshold in THRESHOLDS if weight is not None else (1.0,):
                row = rule_scores(readings, labels, weight, prior, threshold)
                table[("no head" if weight is None else f"w={weight:g}") + f", b={prior:g}, tau={threshold:g}"] = row
                if weight is not None:
                    row_of[(weight, prior, threshold)] = row
    best_turned = max(row["any up axis"] for row in row_of.values())
    upright_ok = [c for c, row in row_of.items() if row["upright"] >= as_given - tolerance]
    kept = [c for c in upright_ok if row_of[c]["any up axis"] >= best_turned - tolerance]
    if kept:  # the fewest upright clouds turned away; then the best turned, no gate before a gate, smaller b and w
        weight, prior, threshold = min(kept, key=lambda c: (row_of[c]["upright turned away"],
                                                            -row_of[c]["any up axis"], -c[2], c[1], c[0]))
    elif upright_ok:  # no setting is close to the best on both: the best turned of those that keep the upright ones
        weight, prior, threshold = max(upright_ok, key=lambda c: (row_of[c]["any up axis"], c[2], -c[1], -c[0]))
    else:
        weight, prior, threshold = max(row_of, key=lambda c: (row_of[c]["upright"], row_of[c]["any up axis"]))
    return {"weight": weight, "identity_prior": prior, "keep_threshold": threshold, "upright_as_given": as_given,
            "validation_top1": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/world"))
    parser.add_argument("--model", required=True, help="a shipped model's short name or a from_pretrained folder")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="save the model with its head in this new folder")
    where.add_argument("--pack", metavar="NAME", help="write the model with its head into the package's shipped copy "
                       "NAME (the rest of the model must be that shipped model's)")
    parser.add_argument("--reuse-head", action="store_true",
                        help="keep the head --model already has; only choose the confidence weight")
    parser.add_argument("--views-per-cloud", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    name, folder = resolve(args.model)
    if args.pack is not None and args.pack not in shipped_models():
        raise SystemExit(f"--pack {args.pack}: not a shipped model ({', '.join(shipped_models())})")
    if args.out is not None and args.out.exists():
        raise SystemExit(f"{args.out} exists: choose a new folder (nothing is overwritten)")

    data = args.work_dir / "synthshapes-1024"
    if not (data / "data").is_dir():
        raise SystemExit(f"{data} not found: run scripts/build_shipped_models.py --work-dir {args.work_dir} first")
    train = load_triples(data, split="train").with_format("numpy")
    held_out = validation_indices(train["label"])
    fit_rows = np.setdiff1d(np.arange(len(train)), held_out)
    validation = prepare_points(list(train.select(held_out.tolist())["points"]), 1024)
    validation_labels = torch.as_tensor(np.asarray(train["label"])[held_out])

    model, tokenizer = load_model_and_tokenizer(str(folder))
    model = model.float().eval()
    if args.reuse_head:
        if model.orientation_head is None:
            raise SystemExit(f"--reuse-head: {folder} has no orientation head")
        record = folder / "orientation_head.json"  # what --out wrote when the head was fitted
        history = json.loads(record.read_text()) if record.is_file() else {}
    else:
        start = time.perf_counter()
        clouds = prepare_points(list(train.select(fit_rows.tolist())["points"]), 1024)
        history = fit_orientation_head(model, clouds, views_per_cloud=args.views_per_cloud, epochs=args.epochs,
                                       seed=args.seed)
        history["seconds"] = round(time.perf_counter() - start, 1)
        history["command"] = (f"python scripts/fit_orientation_head.py --model {name} --views-per-cloud "
                              f"{args.views_per_cloud} --epochs {args.epochs} --seed {args.seed}")
    class_embeds = class_embeddings(model, train.features["label"].names, tokenizer)
    # a head's run folder (--reuse-head) keeps the validation clouds' 48 readings beside it for a rerun; the package's
    # own folder is left as it is
    shipped_copy = PRETRAINED_DIR.resolve() in folder.resolve().parents
    cache = folder.parent / f"{folder.name}-readings.pt" if args.reuse_head and not shipped_copy else None
    if cache is not None and cache.is_file():
        readings = torch.load(cache)
    else:
        readings = orientation_readings(model, class_embeds, validation)
        if cache is not None:
            torch.save(readings, cache)
    if not args.reuse_head:
        history["validation"] = head_scores(readings)
    history["confidence_weight"] = choose_rule(readings, validation_labels)
    model.config.orientation_confidence_weight = float(history["confidence_weight"]["weight"])
    model.config.orientation_identity_prior = float(history["confidence_weight"]["identity_prior"])
    model.config.orientation_keep_threshold = float(history["confidence_weight"]["keep_threshold"])
    print(json.dumps(history, indent=2), flush=True)

    if args.pack is not None:
        dest = PRETRAINED_DIR / args.pack
        shipped = DualDenoisingModel.from_pretrained(dest, dtype=torch.float32).state_dict()
        mine = model.state_dict()
        for key, value in shipped.items():
            if not key.startswith("orientation_head.") and not torch.equal(value, mine[key]):
                raise SystemExit(f"--pack {args.pack}: {folder} is not that model ({key} differs)")
        save_shipped_weights(model, dest)
        metadata = json.loads((dest / "metadata.json").read_text())
        metadata["orientation_head"] = history
        (dest / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        print(f"wrote the head into {dest}")
    else:
        model.save_pretrained(args.out)
        for path in folder.iterdir():  # the tokenizer travels with the model
            if path.name.startswith("tokenizer"):
                (args.out / path.name).write_bytes(path.read_bytes())
        (args.out / "orientation_head.json").write_text(json.dumps(history, indent=2) + "\n")
        print(f"saved {args.out}")


if __name__ == "__main__":
    main()
