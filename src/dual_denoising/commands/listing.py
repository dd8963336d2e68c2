"""`dual-denoising` command handlers: run_models, run_classes (the parsers are in `cli.py`). They read the package's
model folders and nothing else: no torch, no transformers, so a listing answers at once."""

from __future__ import annotations

import argparse
import json

from ..shipped import DEFAULT_MODEL_DIR, shipped_model_classes, shipped_models


def run_classes(args: argparse.Namespace) -> int:
    print("\n".join(shipped_model_classes()))
    return 0


def run_models(args: argparse.Namespace) -> int:
    """The shipped models by short name, the default marked, with what each one is."""
    for name, folder in shipped_models().items():
        meta_file = folder / "metadata.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        mark = "*" if DEFAULT_MODEL_DIR is not None and folder == DEFAULT_MODEL_DIR else " "
        print(f"{mark} {name:<22} {meta.get('summary', '')}")
    print("(* the default; pass a short name as --model, or resolve_model(name) to pipeline(model=...))")
    return 0
