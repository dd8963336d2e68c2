"""One way to build the `accelerate.Accelerator` for every job (teacher, pretraining, evaluation)."""

from __future__ import annotations

import torch


def native_bf16() -> bool:
    """Whether this machine computes bfloat16 natively (a CUDA GPU that supports it, or AVX512-BF16 / AMX on CPU)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def make_accelerator(**kwargs):
    """An `Accelerator` that also joins the processes of `torchrun` / `accelerate launch` on machines without a GPU:
    accelerate takes the multi-process CPU (gloo) path only when asked with `cpu=True`, otherwise each process runs
    as an independent copy. So `cpu` defaults to True when torch sees no accelerator. `mixed_precision="auto"` means
    bf16 where the device computes it natively, else full precision; other arguments pass through."""
    from accelerate import Accelerator

    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    kwargs.setdefault("cpu", not has_accelerator)
    if kwargs.get("mixed_precision") == "auto":
        kwargs["mixed_precision"] = "bf16" if native_bf16() else "no"
    return Accelerator(**kwargs)
