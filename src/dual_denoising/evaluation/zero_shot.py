"""Zero-shot evaluation of a 3D encoder on a labelled point-cloud dataset, clean and under attack (docs/design.md section 8).

    from dual_denoising.evaluation import evaluate_zero_shot
    results = evaluate_zero_shot(model, load_triples(folder, split="test"), tokenizer=tokenizer,
                                 attacks=default_attacks(1024, eot_samples=8), num_noise_samples=8)
    results["clean"]["top1"], results["attacks"]["pgd_linf"]["robust_accuracy"]

or from the command line (writes report.json, report.md and PNG plots):

    dual-denoising evaluate --model DIR --dataset DIR --split test --attacks pgd_linf,pgd_l2,drop,add --eot 8 --out DIR

Rows need `points` `(N, 3)` (N may vary) and a `ClassLabel` `label`. Every cloud is resampled to the model's
`config.point_config.num_points` (farthest point sampling from index 0 when it has more points, its points repeated
in order when it has fewer: deterministic) and normalised to the unit sphere. Class embeddings come from the class
names through the model's text tower and tokenizer (`prompts.encode_class_names`), or are passed in.

Randomness: the clean and the robust predictions draw the model's noise from one seeded stream, the attacks from
another, so robust accuracy is measured with fresh draws, never with the attack's own. Under several processes (an
`accelerate.Accelerator`) each process takes a shard and its own streams; `gather_for_metrics` collects the logits
without the padding duplicates, and the metrics (`evaluate` modules shipped in `dual_denoising/metrics`, loaded by
path, so offline) are computed on the gathered whole.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..orientations import NUM_ORIENTATIONS, every_orientation
from ..pipeline_dual_denoising import prepare_point_cloud
from ..prompts import DEFAULT_TEMPLATES, encode_class_names
from .attacks import PGDLinf, PointCloudAttack, ZeroShotClassifier

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
REPORT_FILES = ("report.json", "report.md", "accuracy_vs_eps.png", "per_class_accuracy.png", "confusion_matrix.png")
DEFAULT_EPS_SWEEP = (0.0, 0.01, 0.02, 0.05)


# ----------------------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------------------
def load_metric(name: str):
    """An `evaluate` metric shipped in `dual_denoising/evaluation/metrics/<name>` (`zero_shot_accuracy`, `attack_success_rate`),
    loaded by path (works offline) and kept in memory (no cache files, so processes never contend for one)."""
    import evaluate

    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        available = sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"no metric {name!r} in {METRICS_DIR}; available: {available}")
    return evaluate.load(str(path), keep_in_memory=True)


def prepare_points(clouds: Sequence[np.ndarray | torch.Tensor], num_points: int, up_axis: str = "y") -> torch.Tensor:
    """Model-ready float32 clouds `(B, num_points, 3)`, each prepared exactly as the pipeline prepares one
    (`pipeline_dual_denoising.prepare_point_cloud`: float64 centring, FPS from index 0 or the seeded repeat, the unit
    sphere, turned Y-up from `up_axis`), so a cloud reaches the model the same way in evaluation, training-time
    evaluation and the pipeline. Only xyz is kept."""
    out = []
    for index, cloud in enumerate(clouds):
        array = np.asarray(cloud.detach().cpu() if isinstance(cloud, torch.Tensor) else cloud)
        if array.ndim != 2 or array.shape[-1] < 3:
            raise ValueError(f"every cloud must be (N, 3); cloud {index} has shape {array.shape}")
        out.append(prepare_point_cloud(array[:, :3], num_points, 1, 3, source=f"cloud {index}", up_axis=up_axis))
    return torch.stack(out)


def class_embeddings(
    model, class_names: Sequence[str], tokenizer, templates: str | Sequence[str] = DEFAULT_TEMPLATES
) -> torch.Tensor:
    """Zero-shot class embeddings `(C, D)` from the model's frozen text tower (`prompts.encode_class_names`)."""
    if getattr(model, "text_model", None) is None:
        raise ValueError(
            "this model has no text tower to embed the class names with; pass class embeddings computed with the "
            "teacher CLIP (class_embeds=, or --class-embeds FILE on the command line)"
        )
    device = next(model.parameters()).device
    return encode_class_names(model.get_text_features, tokenizer, list(class_names), templates, device=device)


@torch.no_grad()
def per_orientation_logits(model, class_embeds: torch.Tensor, clouds: torch.Tensor, batch_size: int = 16,
                           **feature_kwargs) -> torch.Tensor:
    """`(M, N, 3)` clouds -> `(M, 24, C)` zero-shot logits of each cloud in every axis-aligned orientation
    (`orientations.every_orientation`), every reading's noise seeded 0 as the pipeline seeds it; `feature_kwargs` go
    to `zero_shot_logits` (e.g. `num_noise_samples`)."""
    out = []
    for chunk in clouds.split(batch_size):
        candidates = every_orientation(chunk).flatten(0, 1)
        generators = [torch.Generator().manual_seed(0) for _ in range(len(candidates))]
        logits = model.zero_shot_logits(candidates, class_embeds, generator=generators, **feature_kwargs).float()
        out.append(logits.unflatten(0, (len(chunk), NUM_ORIENTATIONS)))
    return torch.cat(out)


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% for z = 1.96): `(low, high)`, in [0, 1]; (0, 1) for no trials."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def _proportion(correct: int, total: int) -> dict[str, Any]:
    """A top-1 figure with its Wilson 95% interval: `{"accuracy", "interval": [low, high], "num_samples"}`."""
    return {"accuracy": correct / total if total else None, "interval": list(wilson_interval(correct, total)),
            "num_samples": total}


def _harmonic(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def open_set_metrics(logits: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                     unseen_classes: Sequence[str]) -> dict[str, Any]:
    """The open-set (generalized zero-shot) protocol: `(M, C)` logits over every class name, `(M,)` true labels.

    Returns `seen` and `unseen`: top-1 of the seen / unseen classes' rows with every name a candidate (generalized);
    `unseen_only`: top-1 of the unseen rows among the unseen names only (classic zero-shot); `harmonic_mean`: H of
    seen and unseen (generalized), the field's single figure (Xian et al. 2017), with the interval H takes at the
    two Wilson intervals' ends (H grows with both, so it holds at least 95% when they are independent). Each figure
    carries its Wilson 95% interval and its number of rows.
    """
    names = list(class_names)
    missing = [name for name in unseen_classes if name not in names]
    if missing:
        raise ValueError(f"unseen classes {missing} are not among the class names {names}")
    unseen_ids = torch.as_tensor([names.index(name) for name in unseen_classes], dtype=torch.long)
    is_unseen = torch.isin(labels, unseen_ids)
    right = logits.argmax(dim=1) == labels
    seen = _proportion(int(right[~is_unseen].sum()), int((~is_unseen).sum()))
    unseen = _proportion(int(right[is_unseen].sum()), int(is_unseen.sum()))
    among_unseen = unseen_ids[logits[is_unseen][:, unseen_ids].argmax(dim=1)] == labels[is_unseen]
    unseen_only = _proportion(int(among_unseen.sum()), int(is_unseen.sum()))
    harmonic = {"accuracy": _harmonic(seen["accuracy"], unseen["accuracy"]),
                "interval": [_harmonic(seen["interval"][0], unseen["interval"][0]),
                             _harmonic(seen["interval"][1], unseen["interval"][1])]}
    return {"seen": seen, "unseen": unseen, "unseen_only": unseen_only, "harmonic_mean": harmonic,
            "unseen_classes": list(unseen_classes)}


def _generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator for one stream (seed, process, purpose): independent streams from one user seed. (CPU, so a
    seed draws the same numbers on any device; the model moves its draws to the input's device.)"""
    state = np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def _describe(defense) -> dict | str | None:
    """A defense for the report: its class and fields (dataclasses), else its repr."""
    if defense is None:
        return None
    if dataclasses.is_dataclass(defense):
        return {"name": type(defense).__name__, **dataclasses.asdict(defense)}
    return repr(defense)


@dataclasses.dataclass
class InferenceOptions:
    """The model's inference options for an evaluation, `get_point_features`'s (None leaves the model config's):
    K and S of parallel noise inference; t_in > 0, randomized smoothing (K noisy copies through the encoder, either
    objective); PointDAE purification rounds first, optionally averaged with the cloud as given (Dual Denoising);
    where a model with a contrastive head reads its embedding (`readout`, `fusion_weight`) and the SDEdit start
    `start_timestep` (-1: pure noise). The attacks see through all of them."""

    num_noise_samples: int | None = None
    num_inference_steps: int | None = None
    inference_point_noise_level: int | None = None
    purification_rounds: int | None = None
    purification_keep_input: bool | None = None
    readout: str | None = None
    fusion_weight: float | None = None
    start_timestep: int | None = None


def _is_stochastic(model, options: InferenceOptions) -> bool:
    """Dual Denoising samples noise (unless it reads its contrastive head alone); the contrastive baseline only with
    randomized smoothing (t_in > 0)."""
    config = getattr(model, "config", None)
    level = options.inference_point_noise_level
    smoothing = (level if level is not None else getattr(config, "inference_point_noise_level", 0)) > 0
    readout = options.readout or getattr(config, "zero_shot_readout", "denoiser")
    if getattr(config, "objective", None) != "contrastive" and readout != "head":
        return True
    return smoothing or bool(options.purification_rounds or getattr(config, "purification_rounds", 0))


class _Batches:
    """Collate dataset rows into `(points (B, num_points, 3), labels (B,))`."""

    def __init__(self, num_points: int, up_axis: str = "y"):
        self.num_points, self.up_axis = num_points, up_axis
        self.input_sizes: list[int] = []  # the smallest and largest cloud seen, as the data holds them

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        sizes = [len(row["points"]) for row in rows] + self.input_sizes
        self.input_sizes = [min(sizes), max(sizes)]
        points = prepare_points([row["points"] for row in rows], self.num_points, self.up_axis)
        labels = torch.as_tensor([int(row["label"]) for row in rows], dtype=torch.long)
        return points, labels


# ----------------------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------------------
def zero_shot_classifier(model, class_embeds: torch.Tensor, defense=None,
                         options: InferenceOptions | None = None) -> ZeroShotClassifier:
    """The classifier `evaluate_zero_shot` scores and attacks: the model's inference `options` as far as the model
    has them; a deterministic model gets only its readout."""
    options = options or InferenceOptions()
    objective = getattr(model.config, "objective", None)
    feature_kwargs = {k: v for k, v in dataclasses.asdict(options).items() if v is not None}
    if (options.purification_rounds or options.purification_keep_input) and objective == "contrastive":
        raise ValueError("purification_rounds needs the PointDAE decoder of a Dual Denoising model; this model is the "
                         "contrastive baseline: leave it out")
    readout = options.readout or getattr(model.config, "zero_shot_readout", "denoiser")
    start = options.start_timestep if options.start_timestep is not None else getattr(
        model.config, "denoiser_start_timestep", None)
    if objective == "dual_denoising" and (readout != "denoiser" or start not in (None, -1)) \
            and not hasattr(model, "projection"):
        raise ValueError(f"readout {readout!r} and start timestep {start} read a contrastive head, which this model has "
                         "not (train one with contrastive_head_weight > 0)")
    stochastic = _is_stochastic(model, options)
    if not stochastic:  # a deterministic reading: K, S and t* mean nothing to it
        feature_kwargs = {k: v for k, v in feature_kwargs.items() if k in ("readout",) and objective != "contrastive"}
    elif objective == "contrastive":
        for key in ("num_inference_steps", "readout", "fusion_weight", "start_timestep"):
            feature_kwargs.pop(key, None)
    # a deterministic reading stays one unless the defense draws noise
    stochastic = stochastic or bool(getattr(defense, "stochastic", False))
    return ZeroShotClassifier(model, class_embeds, defense=defense, stochastic=stochastic, **feature_kwargs)


def collect_logits(classifier: ZeroShotClassifier, loader, attacks: Mapping[str, PointCloudAttack], device,
                   streams: tuple[torch.Generator, torch.Generator], accelerator=None, show_progress: bool = False
                   ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """`{"labels": (M,), "clean": (M, C), name: (M, C) for each attack}` over the loader's batches (gathered over
    processes) and the seconds each took. The model's noise comes from `streams[0]`, the attacks' from `streams[1]`:
    robust accuracy is scored with fresh draws, never the attack's own."""
    noise_stream, attack_stream = streams
    collected: dict[str, list[torch.Tensor]] = defaultdict(list)
    seconds: dict[str, float] = defaultdict(float)
    for points, labels in tqdm(loader, desc="zero-shot eval", disable=not show_progress, leave=False):
        points, labels = points.to(device), labels.to(device)
        tic = time.perf_counter()
        logits = {"clean": classifier(points, generator=noise_stream)}
        seconds["clean"] += time.perf_counter() - tic
        for name, attack in attacks.items():
            tic = time.perf_counter()
            adversarial = attack(classifier, points, labels, generator=attack_stream)
            logits[name] = classifier(adversarial, generator=noise_stream)  # fresh draws, not the attack's
            seconds[name] += time.perf_counter() - tic
        batch = {"labels": labels, **{k: v.float() for k, v in logits.items()}}
        if accelerator is not None:
            batch = accelerator.gather_for_metrics(batch)
        for key, value in batch.items():
            collected[key].append(value.cpu())
    if not collected:
        raise ValueError("the dataset is empty: nothing to evaluate")
    return {key: torch.cat(values) for key, values in collected.items()}, dict(seconds)


def summarize_logits(gathered: Mapping[str, torch.Tensor], labels: torch.Tensor, class_names: Sequence[str],
                     top_k: int, attacks: Mapping[str, PointCloudAttack], sweep: Sequence[float],
                     sweep_attacks: Mapping[float, PointCloudAttack], seconds: Mapping[str, float]) -> dict[str, Any]:
    """`clean`, `attacks` and `pgd_linf_eps_sweep` of `evaluate_zero_shot`'s results, from the collected logits: the
    metrics are the `evaluate` modules shipped in `metrics/`."""
    accuracy_metric, success_metric = load_metric("zero_shot_accuracy"), load_metric("attack_success_rate")

    def accuracy(scores: torch.Tensor) -> dict:
        result = accuracy_metric.compute(
            predictions=scores.numpy(), references=labels.numpy(), top_k=top_k, num_classes=len(class_names)
        )
        result["per_class_accuracy"] = dict(zip(class_names, result["per_class_accuracy"]))
        return result

    clean_predictions = gathered["clean"].argmax(dim=1)
    results: dict[str, Any] = {"clean": accuracy(gathered["clean"]), "attacks": {}, "pgd_linf_eps_sweep": []}
    for name, attack in attacks.items():
        scores = gathered[name]
        robust = success_metric.compute(
            predictions=scores.argmax(dim=1).numpy(), references=labels.numpy(),
            clean_predictions=clean_predictions.numpy(),
        )
        results["attacks"][name] = {"params": attack.params(), **robust, **accuracy(scores), "seconds": seconds[name]}
    for eps in sweep:
        if eps == 0:
            top1 = results["clean"]["top1"]
        elif eps in sweep_attacks:
            top1 = accuracy(gathered[f"pgd_linf@{eps:g}"])["top1"]
        else:
            top1 = results["attacks"]["pgd_linf"]["top1"]
        results["pgd_linf_eps_sweep"].append({"eps": eps, "accuracy": top1})
    return results


def _rows_to_score(dataset, class_names: Sequence[str] | None, max_samples: int | None, seed: int, up_axis: str):
    """The rows `evaluate_zero_shot` scores (a seeded subset of `max_samples`), as numpy, and the class names."""
    if up_axis not in ("y", "z", "x"):
        raise ValueError(f"up_axis must be the dataset's up axis, 'y', 'z' or 'x'; got {up_axis!r}")
    if "points" not in dataset.column_names or "label" not in dataset.column_names:
        raise ValueError(f"the dataset needs 'points' and 'label' columns; it has {dataset.column_names}")
    if class_names is None:
        label_feature = dataset.features["label"]
        if not hasattr(label_feature, "names"):
            raise ValueError("the dataset's 'label' column is not a ClassLabel; pass class_names=[...]")
        class_names = list(label_feature.names)
    if max_samples is not None and max_samples < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(max_samples))
    return dataset.select_columns(["points", "label"]).with_format("numpy"), class_names


@torch.no_grad()
def evaluate_zero_shot(
    model,
    dataset,
    *,
    class_embeds: torch.Tensor | None = None,
    tokenizer=None,
    class_names: Sequence[str] | None = None,
    templates: str | Sequence[str] = DEFAULT_TEMPLATES,
    attacks: Mapping[str, PointCloudAttack] | None = None,
    linf_eps_sweep: Sequence[float] = (),
    defense=None,
    inference: InferenceOptions | None = None,
    batch_size: int = 16,
    max_samples: int | None = None,
    seed: int = 0,
    top_k: int = 5,
    up_axis: str = "y",
    unseen_classes: Sequence[str] | None = None,
    accelerator=None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Zero-shot accuracy of `model` on a labelled dataset, clean and under each attack.

    Args:
        model: a `DualDenoisingModel` (either objective) or any module with `get_point_features` (and, unless
            `class_embeds` is given, `get_text_features` and `text_model`); put in eval mode here.
        dataset: a `datasets.Dataset` with `points` `(N, 3)` and a `ClassLabel` `label`.
        class_embeds: `(C, D)` class embeddings; default: the class names through the model's text tower, with
            `tokenizer` (the teacher's) and `templates`.
        class_names: default: the dataset's `label` names.
        attacks: `{name: attack}` (e.g. `attacks.default_attacks(num_points, eot_samples=R)`); none by default.
        linf_eps_sweep: radii at which robust accuracy under PGD-Linf is also measured (the `pgd_linf` attack's other
            parameters, or `PGDLinf`'s defaults); 0 is the clean accuracy; a radius equal to the `pgd_linf` attack's
            reuses its result.
        defense: optional purification applied before the model (`attacks.SRSDefense`, `attacks.SORDefense`).
        inference: the model's inference options (`InferenceOptions`: K, S, smoothing, purification, readout;
            None leaves the model config's).
        max_samples: evaluate on this many rows, drawn with `seed` (a shuffled subset keeps the classes mixed).
        seed: seeds the model's noise and the attacks (separate streams per process and purpose).
        top_k: the k of the top-k accuracy (5).
        up_axis: the dataset's up axis, "y" (the models' convention), "z" or "x"; clouds are turned Y-up. ("auto",
            the pipeline's per-cloud choice, is measured by research/cross_domain.py, not attacked here.)
        unseen_classes: the classes the model was not trained on (a dataset's metadata records them): adds
            `open_set`, the generalized zero-shot figures of `open_set_metrics` on the clean predictions.
        accelerator: an `accelerate.Accelerator` to shard the rows over processes; results are gathered, so every
            process returns the same dictionary.
    Returns:
        A JSON-ready dict: `clean` (top1, top{k}, per_class_accuracy {name: acc or None}, confusion_matrix),
        `open_set` (with `unseen_classes`),
        `attacks` ({name: params, robust_accuracy, attack_success_rate, per_class_accuracy, confusion_matrix, ...}),
        `pgd_linf_eps_sweep` ([{eps, accuracy}]), and the settings (num_samples, class_names, feature_kwargs, ...).
    """
    from torch.utils.data import DataLoader

    start = time.perf_counter()
    dataset, class_names = _rows_to_score(dataset, class_names, max_samples, seed, up_axis)

    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    model.to(device).eval()
    if class_embeds is None:
        if tokenizer is None:
            raise ValueError("pass class_embeds=(C, D) or the teacher's tokenizer to embed the class names with")
        class_embeds = class_embeddings(model, class_names, tokenizer, templates)
    if class_embeds.shape[0] != len(class_names):
        raise ValueError(f"class_embeds has {class_embeds.shape[0]} rows; the dataset has {len(class_names)} classes")
    classifier = zero_shot_classifier(model, class_embeds.to(device), defense, inference)

    attacks = dict(attacks or {})
    sweep = sorted({float(e) for e in linf_eps_sweep})
    base_linf = attacks.get("pgd_linf", PGDLinf())
    sweep_attacks = {
        eps: dataclasses.replace(base_linf, eps=eps) for eps in sweep
        if eps > 0 and not ("pgd_linf" in attacks and math.isclose(eps, attacks["pgd_linf"].eps))
    }

    num_points = model.config.point_config.num_points
    collate = _Batches(num_points, up_axis)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    rank = 0
    if accelerator is not None:
        loader = accelerator.prepare_data_loader(loader, device_placement=False)
        rank = accelerator.process_index
    noise_stream, attack_stream = _generator(seed, rank, 0), _generator(seed, rank, 1)
    is_main = accelerator is None or accelerator.is_main_process

    runs = {**attacks, **{f"pgd_linf@{eps:g}": attack for eps, attack in sweep_attacks.items()}}
    gathered, seconds = collect_logits(classifier, loader, runs, device, (noise_stream, attack_stream), accelerator,
                                       show_progress and is_main)
    labels = gathered.pop("labels")
    results = summarize_logits(gathered, labels, class_names, top_k, attacks, sweep, sweep_attacks, seconds)
    feature_kwargs = classifier.feature_kwargs
    results = {
        "num_samples": len(labels), "up_axis": up_axis, "class_names": class_names, "num_points": num_points,
        "input_points": collate.input_sizes, "objective": getattr(getattr(model, "config", None), "objective", None),
        "stochastic": classifier.stochastic, "feature_kwargs": feature_kwargs, "logit_scale": classifier.logit_scale,
        "defense": _describe(defense), "seed": seed, **results,
    }
    if unseen_classes:
        results["open_set"] = open_set_metrics(gathered["clean"], labels, class_names, unseen_classes)
    results["seconds"] = {"total": time.perf_counter() - start, **seconds}
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Reports and plots
# ----------------------------------------------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _attack_summary(params: dict) -> str:
    skip = {"attack", "seed", "loss"}
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items() if k not in skip)


def _input_points(results: Mapping[str, Any]) -> str:
    sizes, model_points = results.get("input_points") or [], results["num_points"]
    if not sizes:
        return f"{model_points} (as the model takes them)"
    data = str(sizes[0]) if sizes[0] == sizes[1] else f"{sizes[0]}-{sizes[1]}"
    if sizes == [model_points, model_points]:
        return data
    return f"{data} in the data, resampled to the model's {model_points}"


def open_set_lines(open_set: Mapping[str, Any]) -> list[str]:
    """The report's open-set table: seen, unseen, unseen among the unseen names, and H, with Wilson intervals."""
    def cell(entry):
        low, high = entry["interval"]
        return f"{_pct(entry['accuracy'])} [{_pct(low)}, {_pct(high)}]"

    rows = [("seen classes, every name a candidate", open_set["seen"]),
            ("unseen classes, every name a candidate", open_set["unseen"]),
            ("unseen classes, among the unseen names", open_set["unseen_only"]),
            ("harmonic mean H (seen, unseen)", open_set["harmonic_mean"])]
    return ["## Open set", "", f"Unseen classes: {', '.join(open_set['unseen_classes'])}.", "",
            "| rows | top-1 (%) [95% interval] | samples |", "|---|---:|---:|",
            *(f"| {label} | {cell(entry)} | {entry.get('num_samples', '')} |" for label, entry in rows), ""]


def write_markdown_report(results: Mapping[str, Any], path: str | Path, title: str = "Zero-shot evaluation") -> None:
    """`report.md`: settings, clean top-1/top-k, robust accuracy and success rate per attack, per-class accuracy."""
    clean = results["clean"]
    top_k_key = next(k for k in clean if k.startswith("top") and k != "top1")
    lines = [f"# {title}", ""]
    for key in ("model", "dataset", "split"):
        if key in results:
            lines.append(f"- {key}: `{results[key]}`")
    lines += [
        f"- samples: {results['num_samples']}, classes: {len(results['class_names'])}, "
        f"points per cloud: {_input_points(results)}",
        f"- objective: {results['objective']}, stochastic: {results['stochastic']}, "
        f"feature kwargs: {results['feature_kwargs'] or 'config defaults'}, seed: {results['seed']}",
    ]
    if results.get("defense"):
        lines.append(f"- defense: {results['defense']}")
    lines += ["", "## Clean accuracy", "", f"| top-1 (%) | top-{top_k_key[3:]} (%) |", "|---:|---:|",
              f"| {_pct(clean['top1'])} | {_pct(clean[top_k_key])} |", ""]
    if results.get("open_set"):
        lines += open_set_lines(results["open_set"])
    attacks = results.get("attacks", {})
    if attacks:
        lines += ["## Robustness", "",
                  "Robust accuracy is measured with fresh model noise (not the attack's draws). The success rate is "
                  "the share of clean-correct samples the attack turns wrong.", "",
                  "| attack | parameters | robust accuracy (%) | attack success rate (%) | seconds |",
                  "|---|---|---:|---:|---:|"]
        for name, entry in attacks.items():
            lines.append(
                f"| {name} | {_attack_summary(entry['params'])} | {_pct(entry['robust_accuracy'])} | "
                f"{_pct(entry['attack_success_rate'])} | {entry['seconds']:.1f} |"
            )
        if results["stochastic"] and any(e["params"].get("eot_samples", 1) == 1 for e in attacks.values()):
            lines += ["", "**Warning:** the model is stochastic and some attacks ran without EOT (eot_samples=1); "
                      "their numbers are not robustness numbers (docs/design.md section 8)."]
        lines.append("")
    if results.get("pgd_linf_eps_sweep"):
        lines += ["## PGD-Linf accuracy against epsilon", "", "| eps | accuracy (%) |", "|---:|---:|"]
        lines += [f"| {row['eps']:g} | {_pct(row['accuracy'])} |" for row in results["pgd_linf_eps_sweep"]]
        lines.append("")
    columns = ["clean", *attacks]
    lines += ["## Per-class accuracy (%)", "", "| class | " + " | ".join(columns) + " |",
              "|---|" + "---:|" * len(columns)]
    for name in results["class_names"]:
        values = [clean["per_class_accuracy"][name], *(attacks[a]["per_class_accuracy"][name] for a in attacks)]
        lines.append(f"| {name} | " + " | ".join(_pct(v) for v in values) + " |")
    Path(path).write_text("\n".join(lines) + "\n")


def save_plots(results: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """PNG plots (matplotlib, Agg): `accuracy_vs_eps.png` (when PGD-Linf was swept), `per_class_accuracy.png` (clean
    and under each attack; horizontal bars beyond 12 classes), `confusion_matrix.png` (clean, and under PGD-Linf
    when it ran, on one colour scale). Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written = []
    class_names = results["class_names"]
    num_classes = len(class_names)

    if results.get("pgd_linf_eps_sweep"):
        sweep = results["pgd_linf_eps_sweep"]
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.plot([r["eps"] for r in sweep], [100 * r["accuracy"] for r in sweep], marker="o")
        ax.set(xlabel="PGD-Linf epsilon (unit-sphere coordinates)", ylabel="top-1 accuracy (%)", ylim=(0, 100),
               title=f"Accuracy under PGD-Linf ({results['objective']})")
        params = results.get("attacks", {}).get("pgd_linf", {}).get("params")
        if params:
            eot = f", EOT {params['eot_samples']}" if results["stochastic"] else ""
            ax.text(0.98, 0.95, f"{params['steps']} steps{eot}, {results['num_samples']} samples",
                    transform=ax.transAxes, ha="right", va="top", fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        written.append(out_dir / "accuracy_vs_eps.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)

    series = {"clean": results["clean"]["per_class_accuracy"]}
    series.update({name: entry["per_class_accuracy"] for name, entry in results.get("attacks", {}).items()})
    width = 0.8 / len(series)
    positions = np.arange(num_classes)
    offsets = [(i - (len(series) - 1) / 2) * width for i in range(len(series))]
    title = "Per-class accuracy, clean and under attack"
    if num_classes <= 12:  # classes along x
        fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * num_classes * len(series) ** 0.5 + 3), 3.8))
        for offset, (name, per_class) in zip(offsets, series.items()):
            ax.bar(positions + offset, [100 * (per_class[c] or 0.0) for c in class_names], width, label=name)
        rotate = num_classes > 6
        ax.set_xticks(positions, class_names, rotation=45 if rotate else 0, ha="right" if rotate else "center")
        ax.set(ylabel="top-1 accuracy (%)", ylim=(0, 104), title=title)
    else:  # many classes: one row per class, read top to bottom
        fig, ax = plt.subplots(figsize=(8, 0.12 * num_classes * len(series) + 1.5))
        for offset, (name, per_class) in zip(offsets, series.items()):
            ax.barh(positions + offset, [100 * (per_class[c] or 0.0) for c in class_names], width, label=name)
        ax.set_yticks(positions, class_names)
        ax.set_ylim(num_classes - 0.5, -0.5)  # first class on top, no empty margin
        ax.set(xlabel="top-1 accuracy (%)", xlim=(0, 104), title=title)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    written.append(out_dir / "per_class_accuracy.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    # the clean confusion matrix, and where PGD-Linf sends the samples when it was run
    panels = [("clean", results["clean"]["confusion_matrix"])]
    if "pgd_linf" in results.get("attacks", {}):
        panels.append(("under PGD-Linf", results["attacks"]["pgd_linf"]["confusion_matrix"]))
    rotate = num_classes > 6
    side = max(3.5, 0.3 * num_classes + 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * (side + 0.8), side), squeeze=False)
    vmax = max(max(max(row) for row in matrix) for _, matrix in panels) or 1
    for ax, (label, matrix) in zip(axes[0], panels):
        confusion = np.asarray(matrix)
        image = ax.imshow(confusion, cmap="Blues", vmin=0, vmax=vmax)
        ax.set_xticks(range(num_classes), class_names, rotation=90 if rotate else 0)
        ax.set_yticks(range(num_classes), class_names)
        ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix ({label})")
        if num_classes <= 20:
            for (i, j), count in np.ndenumerate(confusion):
                ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                        color="white" if count > vmax / 2 else "black")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    written.append(out_dir / "confusion_matrix.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    return written


__all__ = [
    "REPORT_FILES",
    "wilson_interval",
    "open_set_metrics",
    "evaluate_zero_shot",
    "load_metric",
    "prepare_points",
    "class_embeddings",
    "write_markdown_report",
    "save_plots",
]
