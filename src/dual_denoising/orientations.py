"""The 24 axis-aligned orientations of a cloud and finding its up axis: the rotations, the orientation head's network
(`DualDenoisingModel.get_orientation_logits` carries it), the principal axes of an arbitrary pose, and the rule that
picks one orientation from the classifier's and the head's logits. Core: numpy, torch and the configuration only; the
pipeline's `up_axis`, the model and the training's orientation augmentation use it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .configuration_dual_denoising import DualDenoisingPointConfig

_TO_Y_UP = {
    "y": np.eye(3),
    "z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),  # (x, y, z) -> (x, z, -y)
    "x": np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),  # (x, y, z) -> (-y, x, z)
}


def _axis_aligned_rotations() -> np.ndarray:
    """The 24 proper rotations that map axes to axes, `(24, 3, 3)`: index `4 u + k` turns up-candidate `u` (+y, -y,
    +z, -z, +x, -x) to +y, then turns `k` quarter turns about y; index 0 is the identity."""
    def yaw(k):
        c, s = round(np.cos(k * np.pi / 2)), round(np.sin(k * np.pi / 2))
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])

    flip = np.diag([1.0, -1.0, -1.0])  # a half turn about x: -y up
    ups = [np.eye(3), flip, _TO_Y_UP["z"], flip @ _TO_Y_UP["z"], _TO_Y_UP["x"], flip @ _TO_Y_UP["x"]]
    return np.stack([yaw(k) @ up for up in ups for k in range(4)])


ORIENTATIONS = _axis_aligned_rotations()
NUM_ORIENTATIONS = len(ORIENTATIONS)
# ORIENTATIONS[i] @ ORIENTATIONS[j] = ORIENTATIONS[COMPOSE[i, j]]: a cloud turned by j and then by i is the cloud
# turned by COMPOSE[i, j] (exactly: the entries are 0 and +-1), so one cloud's 24 readings serve it in every orientation
COMPOSE = np.array([[int(np.argmin(np.abs(ORIENTATIONS - a @ b).sum(axis=(1, 2)))) for b in ORIENTATIONS]
                    for a in ORIENTATIONS])


def every_orientation(points: torch.Tensor) -> torch.Tensor:
    """`(..., N, C)` -> `(..., 24, N, C)`: the cloud in each of the 24 `ORIENTATIONS` (`ORIENTATIONS[o] @ xyz`; any
    channels after xyz are carried along). Orientation 0 is the cloud as given."""
    rotations = torch.as_tensor(ORIENTATIONS, dtype=points.dtype, device=points.device)
    xyz = torch.einsum("rij,...nj->...rni", rotations, points[..., :3])
    rest = points[..., None, :, 3:].expand(*xyz.shape[:-1], points.shape[-1] - 3)
    return torch.cat([xyz, rest], dim=-1)


class DualDenoisingOrientationHead(nn.Module):
    """Which of the 24 axis-aligned rotations turns a cloud upright: every encoder block's states `(B, 1 + G, W)` ->
    LayerNorm (no parameters, so fitting can cache the pooled features) -> `[CLS ; max ; mean]`, concatenated over the
    L blocks `(B, 3 W L)` -> MLP (2W hidden) -> `(B, 24)`. Fitted on the frozen encoder after pretraining
    (`training.fit_orientation_head`); `up_axis="auto"` reads it."""

    def __init__(self, config: DualDenoisingPointConfig):
        super().__init__()
        width = config.hidden_size
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(3 * width * config.num_hidden_layers, 2 * width), nn.GELU(),
                                 nn.Linear(2 * width, NUM_ORIENTATIONS))

    def pool(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        normed = [self.norm(hidden) for hidden in hidden_states]
        return torch.cat([p for h in normed for p in (h[:, 0], h[:, 1:].amax(dim=1), h[:, 1:].mean(dim=1))], dim=-1)

    def forward(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.mlp(self.pool(hidden_states))


def principal_axes(points: np.ndarray | torch.Tensor) -> np.ndarray:
    """`(..., 3, 3)` proper rotations that turn each cloud `(..., N, 3)`'s principal axes onto x, y, z (largest variance
    first), computed in float64 about the cloud's mean. The eigenvectors' signs and the order of equal variances are
    arbitrary, but every such choice differs by one of the 24 `ORIENTATIONS`, which `up_axis="pca"` searches anyway."""
    xyz = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    centred = xyz - xyz.mean(axis=-2, keepdims=True)
    _, vectors = np.linalg.eigh(np.swapaxes(centred, -1, -2) @ centred)  # ascending eigenvalues
    basis = vectors[..., ::-1].copy()  # columns: largest variance first
    basis[..., 2] *= np.sign(np.linalg.det(basis))[..., None]  # a proper rotation (det +1)
    return np.swapaxes(basis, -1, -2)


def choose_orientation(logits: torch.Tensor, turn_logits: torch.Tensor | None = None,
                       confidence_weight: float = 1.0, identity_prior: float = 0.0,
                       keep_threshold: float = 1.0) -> torch.Tensor:
    """The rule `up_axis="auto"` applies: `(B, R, C)` zero-shot logits of each cloud under `R` orientations -> `(B,)`
    the chosen one. Without `turn_logits`, the most confident (the largest top softmax probability). With the
    orientation head's `(B, R)` logits, the one maximising `log p_head(o | x) + w * log max_c softmax(logits[o])`
    (`w = confidence_weight`): the head's belief about the turn, weighed with how sure the classifier is.
    Two ways to keep a cloud that is upright already as it is (orientation 0): `identity_prior` b is added to the
    score of orientation 0, so another must beat it by b (log units); and with a head, a cloud whose head gives
    orientation 0 a probability of at least `keep_threshold` is kept as given (1.0: never by this)."""
    confidence = logits.log_softmax(dim=-1).amax(dim=-1)  # (B, R)
    score = confidence if turn_logits is None else turn_logits.log_softmax(dim=-1) + confidence_weight * confidence
    if identity_prior:
        score = score.clone()
        score[:, 0] += identity_prior
    pick = score.argmax(dim=-1)
    if turn_logits is not None and keep_threshold < 1.0:
        pick = torch.where(turn_logits.softmax(dim=-1)[:, 0] >= keep_threshold, torch.zeros_like(pick), pick)
    return pick
