"""The web demo's start-up and one classify round trip, through `gradio_client` as a user's script would call it.

    python benchmarks/bench_app.py [--repeats 3]

Prints a table: seconds from `build_app()` to a listening server (models loaded, gallery written), and the median
seconds of one `/classify` call on a gallery sample with the default models of the page.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    start = time.perf_counter()
    from dual_denoising.app import GALLERY_CLASSES, build_app, launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_app(gallery_dir=tempfile.mkdtemp())
    launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    startup = time.perf_counter() - start
    from gradio_client import Client

    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    times = []
    for _ in range(args.repeats):
        tic = time.perf_counter()
        client.predict(None, f"{GALLERY_CLASSES[0]} (SynthShapes sample)", "y", ", ".join(GALLERY_CLASSES),
                       _default_choice(), 8, 10, api_name="/classify")
        times.append(time.perf_counter() - tic)
    demo.close()
    print(f"{torch.get_num_threads()} threads\n")
    print("| what | seconds |\n|---|---:|")
    print(f"| start-up (imports, models, gallery, server) | {startup:.1f} |")
    print(f"| one classify round trip (median of {args.repeats}) | {statistics.median(times):.2f} |")


def _default_choice() -> str:
    from dual_denoising.app import BASELINE
    from dual_denoising.shipped import DEFAULT_MODEL_DIR, shipped_models

    return "both side by side" if BASELINE in shipped_models() and BASELINE != DEFAULT_MODEL_DIR.name else \
        DEFAULT_MODEL_DIR.name


if __name__ == "__main__":
    main()
