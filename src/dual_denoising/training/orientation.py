"""The orientation head: which of the 24 axis-aligned rotations turns a cloud upright (docs/design.md section 14).

Models are pretrained on upright (Y-up) clouds and read nothing else; `up_axis="auto"` has to find the turn that makes
a cloud upright. `fit_orientation_head` teaches that to a small head on top of the frozen, pretrained encoder, in the
spirit of RotNet (Gidaris et al. 2018, rotation prediction as a pretext task): every training cloud is shown in some
(or all) of the 24 orientations, and the head learns which turn undoes it. The encoder is not touched, so every other
output of the model stays bit-identical.

    from dual_denoising.training import fit_orientation_head
    history = fit_orientation_head(model, upright_clouds)  # (M, N, 3), model-ready, Y-up
    model.save_pretrained("with-orientation-head")
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ..modeling_dual_denoising import DualDenoisingModel
from ..orientations import ORIENTATIONS, DualDenoisingOrientationHead

logger = logging.getLogger(__name__)


def turn_to(clouds: torch.Tensor, orientations: torch.Tensor) -> torch.Tensor:
    """Upright clouds `(M, N, C)` shown in orientation `o` `(M,)`: `x -> ORIENTATIONS[o]^T x`, so that
    `ORIENTATIONS[o]` turns the result upright again (extra channels ride along)."""
    rotations = torch.as_tensor(ORIENTATIONS, dtype=clouds.dtype, device=clouds.device)[orientations]
    xyz = torch.einsum("mji,mnj->mni", rotations, clouds[..., :3])
    return torch.cat([xyz, clouds[..., 3:]], dim=-1)


@torch.no_grad()
def orientation_features(model: DualDenoisingModel, clouds: torch.Tensor, orientations: torch.Tensor,
                         batch_size: int = 128) -> torch.Tensor:
    """The pooled encoder features the head reads, `(M * V, 3 W L)`, of every cloud `(M, N, C)` turned to each of its
    orientations `(M, V)` (row `V i + v`: cloud i in orientation `orientations[i, v]`)."""
    pool = DualDenoisingOrientationHead(model.config.point_config).pool  # no parameters: any head pools the same
    views = orientations.shape[1]
    cloud_of, flat = torch.arange(len(clouds)).repeat_interleave(views), orientations.flatten()
    out = []
    for rows in torch.arange(len(flat)).split(batch_size):
        chunk = turn_to(clouds[cloud_of[rows]], flat[rows])
        out.append(pool(tuple(h.float() for h in model.encode(chunk.to(model.device, model.dtype)))).cpu())
    return torch.cat(out)


def fit_orientation_head(
    model: DualDenoisingModel,
    clouds: torch.Tensor,
    views_per_cloud: int = 24,
    epochs: int = 30,
    learning_rate: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
) -> dict:
    """Give `model` a new orientation head, fitted on `clouds` (upright, model-ready `(M, N, C)`), each shown in
    `views_per_cloud` of the 24 orientations (all of them, or a seeded draw without repeats per cloud); the encoder
    stays frozen (its pooled features are computed once). Sets `config.orientation_head`.

    Returns the fitting history: the last epoch's loss and the share of training views whose turn is predicted
    exactly (a shape with a symmetry has several right turns, so this is a lower bound on what matters)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    num = len(ORIENTATIONS)
    if not 1 <= views_per_cloud <= num:
        raise ValueError(f"views_per_cloud must be in [1, {num}]; got {views_per_cloud}")
    # cloud i in views_per_cloud distinct orientations
    orientations = torch.stack([torch.randperm(num, generator=generator)[:views_per_cloud] for _ in clouds])
    features = orientation_features(model, clouds, orientations)
    orientations = orientations.flatten()
    torch.manual_seed(seed)
    head = DualDenoisingOrientationHead(model.config.point_config)
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=1e-4)
    steps = epochs * -(-len(features) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps)
    history = {}
    for epoch in range(epochs):
        order = torch.randperm(len(features), generator=generator)
        total, right = 0.0, 0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            logits = head.mlp(features[rows])
            loss = F.cross_entropy(logits, orientations[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(rows)
            right += int((logits.argmax(-1) == orientations[rows]).sum())
        history = {"epoch": epoch + 1, "loss": total / len(order), "train_turn_accuracy": right / len(order)}
        logger.info("orientation head: %s", history)
    model.orientation_head = head.to(model.device, model.dtype).requires_grad_(False)
    model.config.orientation_head = True
    model.train(was_training)
    return {**history, "clouds": len(clouds), "views": len(features), "views_per_cloud": views_per_cloud,
            "epochs": epochs,
            "learning_rate": learning_rate, "seed": seed}

