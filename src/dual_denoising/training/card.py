"""The final folder's model card and its upload to the Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData, create_repo, upload_folder

from ..configuration_dual_denoising import DualDenoisingConfig
from ..data import is_hub_id, portable
from .arguments import PUSH_IGNORE_PATTERNS, PretrainingArguments, recipe_command


def check_hub_access(repo_id: str, private: bool = False) -> None:
    """Create (or find) the Hub repository `--push_to_hub` will upload to, before training starts."""
    try:
        create_repo(repo_id, exist_ok=True, private=private)
    except Exception as err:  # offline mode, no network, no token, no permission
        raise OSError(f"--push_to_hub: cannot create or reach the Hub repository {repo_id!r} "
                      f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'}); log in "
                      "with `hf auth login`, check the network, or drop --push_to_hub") from None


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _table(rows: list[tuple[str, Any]]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {label} | {value} |" for label, value in rows)])


def model_card(args: PretrainingArguments, config: DualDenoisingConfig, results: dict) -> ModelCard:
    """A model card: YAML front matter (library, tags, pipeline tag), the architecture, data, budget and results."""
    card_data = ModelCardData(
        library_name="transformers",  # no Hub pipeline tag exists for 3D classification; the tags say it
        tags=["dual-denoising", "point-cloud", "3d", "zero-shot-3d-classification", "clip-distillation",
              config.objective.replace("_", "-")],
        license="apache-2.0",
        datasets=[args.dataset] if is_hub_id(args.dataset) else None,
        base_model=args.teacher if is_hub_id(args.teacher) else None,
    )
    pc, dc = config.point_config, config.denoiser_config
    data, evaluation = results["data"], results.get("eval") or {}
    denoising = config.objective == "dual_denoising"
    if denoising:
        method = ("Dual Denoising (Luo, Qu, Gao, arXiv 2407.00905): PointDAE on the points and a feature DDPM that "
                  "turns noise into the teacher's CLIP feature, guided by the point tokens")
    else:
        method = ("the ULIP direct-alignment baseline (symmetric InfoNCE against the teacher's image and text "
                  "embeddings)")
    parts = "the 3D tower" + (", the feature denoiser" if denoising else "")
    if results["self_contained"]:
        contents = (f"The folder is self-contained for zero-shot classification: {parts}, the teacher's frozen text "
                    "tower and its tokenizer.")
    else:
        contents = (f"The folder holds {parts} but no text tower + tokenizer: pass class embeddings from the "
                    "teacher (`text_embeds=...`) to classify.")
    contents += (" As saved by `pretrain` it also holds the model and pipeline code, so `trust_remote_code=True` "
                 "loads it where this package is not installed.")
    model_rows = [
        ("objective", f"`{config.objective}`"),
        ("points per cloud (N)", pc.num_points),
        ("groups x points per group (G x k)", f"{pc.num_groups} x {pc.group_size}"),
        ("encoder (W, L_e, heads)", f"{pc.hidden_size}, {pc.num_hidden_layers}, {pc.num_attention_heads}"),
        ("PointDAE decoder blocks (L_d)", pc.num_decoder_layers if denoising else "-"),
        ("feature denoiser (width, L_f, M tokens)",
         f"{dc.hidden_size}, {dc.num_hidden_layers}, {dc.num_feature_tokens}" if denoising else "-"),
        ("teacher embedding size (D)", config.embed_dim),
        ("inference (K chains, S steps)", f"{config.num_noise_samples}, {config.num_inference_steps}"),
        ("trainable / total parameters", f"{results['trainable_parameters']:,} / {results['total_parameters']:,}"),
    ]
    budget_rows = [
        ("optimizer updates", f"{results['global_step']} ({results['epoch']:.2f} epochs)"),
        ("batch (per device x processes x accumulation)",
         f"{args.per_device_train_batch_size} x {results['num_processes']} x "
         f"{results['gradient_accumulation_steps']} = {results['total_batch_size']}"),
        ("learning rate, schedule, warm-up",
         f"{args.learning_rate:g}, {args.lr_scheduler_type}, {results['num_warmup_steps']} updates"),
        ("AdamW weight decay, gradient clipping", f"{args.weight_decay:g}, {args.max_grad_norm:g}"),
        ("mixed precision", results["mixed_precision"]),
        ("wall time", f"{results['train_runtime_seconds']:.0f} s on {results['num_processes']} x {results['device']}"),
        ("seed", args.seed),
    ]
    rows = f"{data.get('num_train_rows') or 'streamed'} rows"
    if args.train_on_seen_classes:
        rows += ", seen classes only"
    cost = data.get("teacher_features_cost")
    features = "" if not cost or cost["reused"] else (
        f"; its embeddings of the {cost['rows']} rows were computed for this run in {cost['seconds']:.0f} s on "
        f"{cost['device']}"
    )
    scans = "-" if not data.get("scan_datasets") else (
        f"each training cloud replaced by its scan with probability {data['scan_probability']}, from "
        + ", ".join(f"`{name}`" for name in data["scan_datasets"])
    )
    eval_rows = "\n".join(
        f"| {label} | {_percent(evaluation.get(f'{key}accuracy'))} | {evaluation.get(f'num_{key}samples', 'n/a')} |"
        for label, key in (("all classes", ""), ("seen classes", "seen_"), ("unseen classes", "unseen_"))
    )
    body = f"""
# Dual Denoising point-cloud encoder ({config.objective})

A 3D point-cloud encoder whose embeddings live in a frozen CLIP teacher's space, trained with {method}.
{contents}

```python
import dual_denoising  # registers the model and the task
from transformers import pipeline

classifier = pipeline("zero-shot-3d-classification", model="{args.hub_model_id or 'path/to/this/folder'}")
classifier("chair.ply", candidate_labels=["chair", "table", "lamp"])
```

## Model

{_table(model_rows)}

## Data

- dataset: `{portable(args.dataset)}` (split `{args.train_split}`, {rows})
- classes: {", ".join(data.get("classes") or []) or "n/a"}
- seen classes: {", ".join(data.get("seen_classes") or []) or "-"}
- unseen classes: {", ".join(data.get("unseen_classes") or []) or "-"}
- teacher: `{portable(args.teacher) or "embeddings precomputed in the dataset"}`{features}
- scans mixed in: {scans}

## Training budget

{_table(budget_rows)}

The command that trained it (paths by folder name):

```bash
{recipe_command(args)}
```

## Evaluation

Zero-shot top-1 on split `{args.eval_split}`; class embeddings: {evaluation.get("class_embeds_source", "n/a")}.

| rows | accuracy | samples |
|---|---|---|
{eval_rows}
"""
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


def push_folder_to_hub(
    folder: str | Path, repo_id: str, private: bool = False, commit_message: str | None = None
) -> str:
    """Create the Hub model repository if needed and upload `folder` without its checkpoints and debug logs."""
    url = create_repo(repo_id, exist_ok=True, private=private)
    repo_id = getattr(url, "repo_id", None) or repo_id
    upload_folder(
        repo_id=repo_id, folder_path=str(folder), ignore_patterns=PUSH_IGNORE_PATTERNS,
        commit_message=commit_message or "Upload Dual Denoising model",
    )
    return repo_id
