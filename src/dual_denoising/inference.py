"""Using a trained model: classify point-cloud files, embed them, retrieve by cosine similarity.

    dual-denoising classify chair.ply lamp.obj --labels chair table lamp [--model DIR] [--top-k 3] [--json]
    dual-denoising embed shapes/*.ply --out embeds.parquet [--model DIR]

Retrieval (3D -> text, 3D -> 3D, text -> 3D) is a cosine top-k over L2-normalised embeddings:

    >>> from dual_denoising.inference import embed_point_clouds, cosine_top_k, encode_class_names
    >>> from dual_denoising.inference import load_model_and_tokenizer
    >>> model, tokenizer = load_model_and_tokenizer("path/to/model")      # or a shipped model's short name
    >>> database = embed_point_clouds(model, ["a.ply", "b.ply", "c.ply"])      # (3, D)
    >>> scores, indices = cosine_top_k(database[:1], database, k=2)            # 3D -> 3D: a.ply's neighbours
    >>> labels = encode_class_names(model.get_text_features, tokenizer, ["chair", "lamp"])
    >>> scores, indices = cosine_top_k(labels, database, k=1)                  # text -> 3D
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .fileio import load_points
from .modeling_dual_denoising import DualDenoisingModel
from .pipeline_dual_denoising import prepare_point_cloud
from .prompts import encode_class_names
from .shipped import load_model_and_tokenizer

__all__ = ["cosine_top_k", "embed_point_clouds", "encode_class_names", "load_model_and_tokenizer"]


def cosine_top_k(queries, database, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity top-k: `queries (Q, D)` against `database (M, D)` -> `(scores, indices)`, both `(Q, k)`."""
    queries = F.normalize(torch.as_tensor(np.asarray(queries, dtype=np.float32)), dim=-1)
    database = F.normalize(torch.as_tensor(np.asarray(database, dtype=np.float32)), dim=-1)
    if queries.dim() != 2 or database.dim() != 2 or queries.shape[1] != database.shape[1]:
        raise ValueError(f"queries (Q, D) and database (M, D) must share D; got {tuple(queries.shape)} and "
                         f"{tuple(database.shape)}")
    k = min(k, database.shape[0])
    scores, indices = (queries @ database.T).topk(k, dim=-1)
    return scores.numpy(), indices.numpy()


def embed_point_clouds(
    model: DualDenoisingModel,
    clouds: Sequence,
    batch_size: int = 32,
    num_noise_samples: int | None = None,
    num_inference_steps: int | None = None,
    seed: int = 0,
    progress: bool = False,
    up_axis: str = "y",
) -> np.ndarray:
    """L2-normalised 3D embeddings `(len(clouds), D)` of arrays `(N, 3)` or file paths, prepared as the pipeline
    prepares them (unit sphere, FPS to the model's point count) and seeded the same way."""
    from tqdm.auto import tqdm

    config = model.config.point_config
    min_points = max(config.group_size, config.num_groups)
    device = next(model.parameters()).device
    out = []
    bar = tqdm(total=len(clouds), unit="cloud", desc="embedding", disable=not progress)
    for start in range(0, len(clouds), batch_size):
        chunk = clouds[start : start + batch_size]
        points = torch.stack([
            prepare_point_cloud(load_points(c) if isinstance(c, (str, Path)) else c, config.num_points, min_points,
                                config.in_channels, source=str(c) if isinstance(c, (str, Path)) else None,
                                up_axis=up_axis)
            for c in chunk
        ])
        with torch.no_grad():
            embeds = model.get_point_features(
                points.to(device, model.dtype),
                num_noise_samples=num_noise_samples,
                num_inference_steps=num_inference_steps,
                generator=[torch.Generator(device).manual_seed(seed) for _ in range(points.shape[0])],
            )
        out.append(embeds.float().cpu().numpy())
        bar.update(len(chunk))
    bar.close()
    return np.concatenate(out) if out else np.zeros((0, model.config.embed_dim), dtype=np.float32)


