"""`dual-denoising` command handlers: run_serve (the parsers are in `cli.py`)."""

from __future__ import annotations

import argparse

from ..app import build_app, launch


def run_serve(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ValueError("the web demo needs Gradio: pip install 'dual-denoising[demo]'") from None
    names = None if args.model is None else [args.model] + [n for n in args.compare_with if n != args.model]
    launch(build_app(names), host=args.host, port=args.port)
    return 0
