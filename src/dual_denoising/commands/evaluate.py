"""`dual-denoising` command handlers: run_evaluate (the parsers are in `cli.py`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..data import portable
from ..distributed import make_accelerator
from ..evaluation.attacks import DEFENSES, default_attacks
from ..evaluation.zero_shot import (
    REPORT_FILES,
    InferenceOptions,
    _pct,
    evaluate_zero_shot,
    save_plots,
    write_markdown_report,
)
from ..outputs import check_not_an_input


def run_evaluate(args: argparse.Namespace) -> int:
    """The `evaluate` subcommand."""
    from ..data import load_triples, load_triples_metadata

    out_dir = Path(args.out)
    check_not_an_input(out_dir, {"--dataset": args.dataset, "--model": args.model}, "--out")
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} is a file; the report is a folder (report.json, report.md, plots): "
                              "name a folder")
    existing = [name for name in REPORT_FILES if (out_dir / name).exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{out_dir} already holds {', '.join(existing)}; pass --overwrite to replace them")
    from ..shipped import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(args.model)  # one line on what is missing or wrong
    dataset = load_triples(args.dataset, split=args.split)
    unseen = load_triples_metadata(args.dataset).get("unseen_classes") if Path(args.dataset).is_dir() else None
    unseen = _comma_list(args.unseen_classes) if args.unseen_classes else unseen
    class_embeds = None
    if args.class_embeds:
        class_embeds, tokenizer = _load_class_embeds(args.class_embeds), None
    elif tokenizer is None:
        raise ValueError(f"{args.model} holds no tokenizer to embed the class names with; save the teacher's "
                         "tokenizer there (tokenizer.save_pretrained(DIR)) or pass --class-embeds FILE")

    num_points = model.config.point_config.num_points
    attacks = default_attacks(num_points, eot_samples=args.eot, seed=args.seed, names=_comma_list(args.attacks))
    sweep = args.linf_eps_sweep if "pgd_linf" in attacks else []
    defense = DEFENSES[args.defense]() if args.defense != "none" else None

    accelerator = make_accelerator()
    results = evaluate_zero_shot(
        model, dataset, class_embeds=class_embeds, tokenizer=tokenizer, attacks=attacks, linf_eps_sweep=sweep,
        defense=defense, inference=InferenceOptions(
            num_noise_samples=args.num_noise_samples, num_inference_steps=args.num_inference_steps,
            inference_point_noise_level=args.inference_point_noise_level, purification_rounds=args.purification_rounds,
            purification_keep_input=args.purification_keep_input, readout=args.readout,
            fusion_weight=args.fusion_weight, start_timestep=args.start_timestep),
        batch_size=args.batch_size, max_samples=args.max_samples, seed=args.seed, up_axis=args.up_axis,
        unseen_classes=unseen, accelerator=accelerator, show_progress=not args.no_progress,
    )
    if accelerator.is_main_process:
        results = {"model": portable(args.model), "dataset": portable(str(args.dataset)), "split": args.split,
                   **results}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps(results, indent=2) + "\n")
        write_markdown_report(results, out_dir / "report.md")
        save_plots(results, out_dir)
        summary = [f"clean top-1 {_pct(results['clean']['top1'])}%"]
        if "open_set" in results:
            figures = results["open_set"]
            summary += [f"{key.replace('_', '-')} {_pct(figures[key]['accuracy'])}%"
                        for key in ("seen", "unseen", "unseen_only", "harmonic_mean")]
        summary += [f"{n} {_pct(e['robust_accuracy'])}%" for n, e in results["attacks"].items()]
        print(f"{results['num_samples']} samples: " + ", ".join(summary) + f"; report in {out_dir}")
    accelerator.wait_for_everyone()
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------------
def _comma_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip() and t.strip().lower() != "none"]


def _load_class_embeds(path: str | Path) -> torch.Tensor:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class embeddings file {path} does not exist")
    if path.suffix == ".npy":
        return torch.from_numpy(np.load(path)).float()
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        if len(tensors) != 1:
            raise ValueError(f"{path} must hold exactly one tensor (C, D); it holds {sorted(tensors)}")
        return next(iter(tensors.values())).float()
    return torch.load(path, map_location="cpu", weights_only=True).float()
