"""One way to build the `accelerate.Accelerator` for every job (teacher, pretraining, evaluation)."""

from __future__ import annotations

import torch


def make_accelerator(**kwargs):
    """An `Accelerator` that also joins the processes of `torchrun` / `accelerate launch` on machines without a GPU:
    accelerate takes the multi-process CPU (gloo) path only when asked with `cpu=True`, otherwise each process runs
    as an independent copy. So `cpu` defaults to True when torch sees no accelerator; other arguments pass through."""
    from accelerate import Accelerator

    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    kwargs.setdefault("cpu", not has_accelerator)
    return Accelerator(**kwargs)
