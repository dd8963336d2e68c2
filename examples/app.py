"""The web demo as a Hugging Face Space would run it: `python examples/app.py` (requirements in
examples/requirements-app.txt). The same app as `dual-denoising serve`; see `dual_denoising/app.py`."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from dual_denoising.app import build_app, launch  # noqa: E402

demo = build_app()

if __name__ == "__main__":
    launch(demo, host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
           port=int(os.environ["GRADIO_SERVER_PORT"]) if "GRADIO_SERVER_PORT" in os.environ else None)
