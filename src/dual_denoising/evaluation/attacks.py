"""White-box attacks on zero-shot point-cloud classifiers, and two input-purification defenses (docs/design.md section 8).

Every attack is a small dataclass whose fields are its parameters, called as

    adversarial = attack(classifier, points, labels, generator=None)        # (B, N', C), a new tensor

where `classifier(points, generator=None) -> logits (B, C)` is differentiable in `points`. `ZeroShotClassifier` wraps
any object exposing `get_point_features` (the Dual Denoising model, the contrastive baseline, ...) with class
embeddings, so the method and the baseline are attacked by exactly the same code:

    classifier = ZeroShotClassifier(model, class_embeds, num_noise_samples=8)
    adversarial = PGDLinf(eps=0.05, eot_samples=8)(classifier, points, labels)
    robust_logits = classifier(adversarial, generator=fresh_generator)      # fresh randomness, not the attack's

Threat model: untargeted, the attacks maximise the cross-entropy of the true label on unit-sphere coordinates (only
the xyz channels are changed; extra channels such as RGB ride along). The classifier may be stochastic: each
gradient is then an EOT estimate, the mean over `eot_samples` fresh draws of the classifier's randomness, each
differentiated through the whole sampling chain. Deterministic classifiers (`classifier.stochastic` False) are
queried once per step whatever `eot_samples` says. The caller's tensors are never modified.

Default parameters are the design's for 1024-point clouds; `default_attacks(num_points)` scales the budgets that
depend on the number of points (L2 radius, points dropped or added) to other sizes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..point_ops import check_points, farthest_point_sample, gather_points, knn

Classifier = Callable[..., torch.Tensor]
"""`classifier(points (B, N, C), generator=None) -> logits (B, num_classes)`, differentiable in `points`."""

LOSSES = ("ce", "margin")


# ----------------------------------------------------------------------------------------------------------------------
# The classifier that attacks differentiate
# ----------------------------------------------------------------------------------------------------------------------
class ZeroShotClassifier:
    """Zero-shot logits `logit_scale * cos(get_point_features(points), class_embeds)` of any 3D encoder.

    Args:
        model: any object with `get_point_features(points, **feature_kwargs) -> (B, D)`; a `generator` keyword is
            passed on when the classifier is stochastic.
        class_embeds: `(C, D)` class embeddings (normalised here).
        logit_scale: the softmax temperature's inverse; default `model.logit_scale.exp()` when the model has one,
            else 1.
        defense: optional purification `defense(points, generator=None) -> points` applied before the model (e.g.
            `SRSDefense`, `SORDefense`); attacks then differentiate through it.
        stochastic: whether two calls on the same input can differ; default: True unless the model's config says
            `objective="contrastive"` (the deterministic baseline) and the defense is deterministic. Attacks query a
            deterministic classifier once per step instead of `eot_samples` times.
        feature_kwargs: passed to `get_point_features`, e.g. `num_noise_samples`, `num_inference_steps`.
    """

    def __init__(
        self,
        model,
        class_embeds: torch.Tensor,
        logit_scale: float | torch.Tensor | None = None,
        defense: Callable[..., torch.Tensor] | None = None,
        stochastic: bool | None = None,
        **feature_kwargs,
    ) -> None:
        if not hasattr(model, "get_point_features"):
            raise ValueError(f"model must expose get_point_features(points, ...); got {type(model).__name__}")
        if class_embeds.dim() != 2:
            raise ValueError(f"class_embeds must be (C, D); got {tuple(class_embeds.shape)}")
        self.model = model
        self.class_embeds = F.normalize(class_embeds.detach().float(), dim=-1)
        if logit_scale is None:
            logit_scale = model.logit_scale.detach().exp() if hasattr(model, "logit_scale") else 1.0
        self.logit_scale = float(logit_scale)
        self.defense = defense
        if stochastic is None:
            deterministic_model = getattr(getattr(model, "config", None), "objective", None) == "contrastive"
            stochastic = not deterministic_model or getattr(defense, "stochastic", False)
        self.stochastic = stochastic
        self.feature_kwargs = feature_kwargs

    def logits(self, points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """`(B, C)` float32 logits of `points (B, N, C)`; `generator` drives every random draw (noise, defense)."""
        if self.defense is not None:
            points = self.defense(points, generator=generator)
        kwargs = dict(self.feature_kwargs)
        if self.stochastic:
            kwargs["generator"] = generator
        features = self.model.get_point_features(points, **kwargs).float()  # (B, D), normalised
        return self.logit_scale * features @ self.class_embeds.to(features.device).T

    __call__ = logits


# ----------------------------------------------------------------------------------------------------------------------
# Loss and EOT gradient
# ----------------------------------------------------------------------------------------------------------------------
def attack_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str = "ce") -> torch.Tensor:
    """Per-cloud loss `(B,)` an untargeted attack maximises.

    `"ce"`: cross-entropy of the true label. `"margin"`: Carlini-Wagner's `max_{c != y} z_c - z_y`, which keeps a
    gradient where a saturated softmax gives none (a margin above ~100 nats underflows float32).
    """
    if loss == "ce":
        return F.cross_entropy(logits.float(), labels, reduction="none")
    if loss == "margin":
        true = logits.gather(1, labels[:, None])[:, 0]
        others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
        return others.amax(dim=1) - true
    raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}")


def eot_gradient(
    classifier: Classifier,
    points: torch.Tensor,
    labels: torch.Tensor,
    eot_samples: int = 1,
    generator: torch.Generator | None = None,
    loss: str = "ce",
) -> torch.Tensor:
    """Expectation over Transformation: the gradient of the summed per-cloud loss with respect to `points`,
    averaged over `eot_samples` draws of the classifier's randomness.

    Each draw is a separate call of `classifier(points, generator=generator)`; calls that share one generator
    consume its stream, so every draw is fresh (`None` uses the global RNG). The losses are summed over the batch,
    so each cloud's gradient is its own. Draws are differentiated one at a time (memory does not grow with R).
    A deterministic classifier (`classifier.stochastic` False) is queried once.

    Returns:
        `(B, N, C)`, detached, float32.
    """
    if eot_samples < 1:
        raise ValueError(f"eot_samples must be >= 1; got {eot_samples}")
    draws = eot_samples if getattr(classifier, "stochastic", True) else 1
    total = torch.zeros_like(points, dtype=torch.float32)
    for _ in range(draws):
        with torch.enable_grad():
            x = points.detach().requires_grad_(True)
            value = attack_loss(classifier(x, generator=generator), labels, loss).sum()
            (grad,) = torch.autograd.grad(value, x)
        total += grad.float()
    return total / draws


# ----------------------------------------------------------------------------------------------------------------------
# Attacks
# ----------------------------------------------------------------------------------------------------------------------
def _uniform(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U[0, 1) on the generator's device (a seed gives the same draw on CPU and GPU), moved to `like`'s device."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device, torch.float32)


def _normal(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device).to(like.device, torch.float32)


def _with_xyz(points: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
    """`points` with its xyz channels replaced (a new tensor; extra channels are kept)."""
    return torch.cat([xyz.to(points.dtype), points[..., 3:]], dim=-1)


def _l2_norm(x: torch.Tensor) -> torch.Tensor:
    """Per-cloud L2 norm over all points and coordinates: `(B, N, 3)` -> `(B, 1, 1)`."""
    return x.flatten(1).norm(dim=1).reshape(-1, 1, 1)


@dataclass(kw_only=True)
class PointCloudAttack:
    """Base of the attacks: checks the inputs, copies them, seeds a generator, and runs `perturb` with gradients on.

    Fields shared by every attack:
        eot_samples: R, classifier draws averaged per gradient (EOT); used only against stochastic classifiers.
        loss: `"ce"` (cross-entropy of the true label, default) or `"margin"` (see `attack_loss`).
        seed: seeds the attack's own generator when `__call__` gets none (random starts and EOT draws), so a run is
            reproducible; `None` uses the global RNG.
    """

    eot_samples: int = 1
    loss: str = "ce"
    seed: int | None = 0

    name = "attack"

    def __post_init__(self) -> None:
        if self.eot_samples < 1:
            raise ValueError(f"eot_samples must be >= 1; got {self.eot_samples}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}; got {self.loss!r}")

    def __call__(
        self,
        classifier: Classifier,
        points: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Adversarial clouds for `points (B, N, C)` with true `labels (B,)`: a new detached tensor."""
        check_points(points, "points")
        if labels.shape != (points.shape[0],):
            raise ValueError(f"labels must be (B,) = ({points.shape[0]},); got {tuple(labels.shape)}")
        if generator is None and self.seed is not None:
            generator = torch.Generator().manual_seed(self.seed)
        points = points.detach().clone()
        labels = labels.detach().to(points.device)
        with torch.enable_grad():
            return self.perturb(classifier, points, labels, generator).detach()

    def perturb(self, classifier, points, labels, generator) -> torch.Tensor:
        raise NotImplementedError

    def gradient(self, classifier, points, labels, generator) -> torch.Tensor:
        """EOT gradient of the attack loss with respect to the xyz channels, `(B, N, 3)`."""
        return eot_gradient(classifier, points, labels, self.eot_samples, generator, self.loss)[..., :3]

    def params(self) -> dict:
        """The attack's parameters, for reports (with the step size in effect when it was left to its default)."""
        params = {"attack": type(self).__name__, **dataclasses.asdict(self)}
        if "step_size" in params:
            params["step_size"] = self.alpha
        return params


@dataclass(kw_only=True)
class _PGD(PointCloudAttack):
    """Projected gradient ascent on the attack loss: a start inside the ball, then `steps` of `ascent(gradient)`
    each followed by `project`. Subclasses define the ball."""

    eps: float
    steps: int = 20
    step_size: float | None = None
    random_start: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eps < 0 or self.steps < 0:
            raise ValueError(f"eps and steps must be >= 0; got eps={self.eps}, steps={self.steps}")

    @property
    def alpha(self) -> float:
        """The step size in effect: `step_size`, or `2.5 * eps / steps` (Madry et al.'s rule)."""
        return self.step_size if self.step_size is not None else 2.5 * self.eps / max(self.steps, 1)

    def random_delta(self, xyz: torch.Tensor, generator) -> torch.Tensor:
        raise NotImplementedError

    def ascent(self, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def project(self, delta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def perturb(self, classifier, points, labels, generator) -> torch.Tensor:
        xyz = points[..., :3].float()
        delta = self.random_delta(xyz, generator) if self.random_start else torch.zeros_like(xyz)
        for _ in range(self.steps):
            grad = self.gradient(classifier, _with_xyz(points, xyz + delta), labels, generator)
            delta = self.project(delta + self.alpha * self.ascent(grad))
        return _with_xyz(points, xyz + delta)


@dataclass(kw_only=True)
class PGDLinf(_PGD):
    """Projected gradient descent in an L-infinity ball (Madry et al. 2018) on every coordinate of every point.

    Fields:
        eps: the ball's radius, on unit-sphere coordinates (design: 0.05).
        steps: gradient steps (design: 20).
        step_size: per-step move; default `2.5 * eps / steps` (Madry et al.'s rule: eps / 8 for 20 steps), so a
            coordinate can cross the whole ball (2 eps) in 80% of the steps, with room to correct after a random start.
        random_start: start from a uniform draw in the ball (design: yes) rather than the clean cloud.

    Each step moves by `step_size * sign(gradient)` and clamps the perturbation to `[-eps, eps]`. No box
    constraint: point clouds have no valid-range limit. Returns the last iterate.
    """

    eps: float = 0.05

    name = "pgd_linf"

    def random_delta(self, xyz, generator):
        return (2 * _uniform(xyz.shape, xyz, generator) - 1) * self.eps

    def ascent(self, grad):
        return grad.sign()

    def project(self, delta):
        return delta.clamp(-self.eps, self.eps)


@dataclass(kw_only=True)
class PGDL2(_PGD):
    """Projected gradient descent in an L2 ball, the norm taken per cloud over all points and coordinates.

    Fields:
        eps: the ball's radius (design: 1.25 for 1024 points, a root-mean-square displacement of 0.039 per point;
            `default_attacks` scales it by sqrt(N / 1024)).
        steps: gradient steps (design: 20).
        step_size: default `2.5 * eps / steps` (as `PGDLinf`).
        random_start: start from a random direction at a radius drawn uniformly in [0, eps].

    Each step moves by `step_size * g / ||g||` and projects back onto the ball (`delta *= min(1, eps / ||delta||)`).
    """

    eps: float = 1.25

    name = "pgd_l2"

    def random_delta(self, xyz, generator):
        direction = _normal(xyz.shape, xyz, generator)
        radius = _uniform((xyz.shape[0], 1, 1), xyz, generator) * self.eps
        return self.project(direction / _l2_norm(direction).clamp_min(1e-12) * radius)

    def ascent(self, grad):
        return grad / _l2_norm(grad).clamp_min(1e-12)

    def project(self, delta):
        norm = _l2_norm(delta)
        return delta * (self.eps / norm.clamp_min(1e-12)).clamp(max=1.0)


@dataclass(kw_only=True)
class SaliencyDrop(PointCloudAttack):
    """Iterative saliency point dropping (Zheng, Chen, Cai, Qiu, "PointCloud Saliency Maps", ICCV 2019).

    Dropping a point is approximated by moving it to the cloud's centre (the coordinate-wise median). Along that
    path the loss changes at the rate `-dL/dr_i`, r_i the point's distance to the centre, so the saliency score is
    `s_i = -dL/dr_i * r_i ** (1 + alpha)` (the paper's rescaling). Each round drops the points with the highest
    scores, then recomputes the gradient on the smaller cloud.

    Fields:
        num_points: points dropped per cloud (design: 200 of 1024).
        num_rounds: rounds; the drop is spread evenly over them (the paper drops 5 points per round: `num_rounds=40`
            for 200; 10 rounds cost a quarter of that and are nearly as strong on small models).
        alpha: the paper's score exponent (1).

    Returns `(B, N - num_points, C)`: the surviving points, in their original order.
    """

    num_points: int = 200
    num_rounds: int = 10
    alpha: float = 1.0

    name = "drop"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_points < 0 or self.num_rounds < 1:
            raise ValueError(f"need num_points >= 0 and num_rounds >= 1; got {self.num_points}, {self.num_rounds}")

    def saliency(self, classifier, points, labels, generator) -> torch.Tensor:
        """Scores `(B, N)`: how much moving each point to the centre increases the loss."""
        grad = self.gradient(classifier, points, labels, generator)  # (B, N, 3)
        xyz = points[..., :3].float()
        offset = xyz - xyz.median(dim=1, keepdim=True).values
        radius = offset.norm(dim=-1).clamp_min(1e-8)
        d_loss_d_radius = (grad * offset).sum(-1) / radius
        return -d_loss_d_radius * radius.pow(1 + self.alpha)

    def perturb(self, classifier, points, labels, generator) -> torch.Tensor:
        if self.num_points >= points.shape[1]:
            raise ValueError(f"cannot drop {self.num_points} of {points.shape[1]} points")
        rounds = min(self.num_rounds, max(self.num_points, 1))
        per_round = [self.num_points // rounds + (r < self.num_points % rounds) for r in range(rounds)]
        for count in per_round:
            if count == 0:
                continue
            scores = self.saliency(classifier, points, labels, generator)
            keep = scores.topk(points.shape[1] - count, dim=1, largest=False).indices.sort(dim=1).values
            points = gather_points(points, keep)
        return points


@dataclass(kw_only=True)
class PointAdd(PointCloudAttack):
    """Bounded point adding: `num_points` new points start as copies of existing points and are moved by PGD-Linf,
    each within an L-infinity ball of radius `eps` around the point it copies. The original points are unchanged.

    The sources are picked by farthest point sampling (deterministic, spread over the surface), so the added points
    sit on or next to the shape's own surface: an added point is never farther than `eps` per coordinate from a
    real one, which keeps the attack bounded and hard to remove by outlier filtering.

    Fields:
        num_points: points added per cloud (design: 200 for 1024).
        eps: the bound on each added point's move, per coordinate (0.05, the PGD-Linf budget).
        steps, step_size, random_start: as `PGDLinf` (step size default `2.5 * eps / steps`).

    Returns `(B, N + num_points, C)`: the original points first, then the added ones.
    """

    num_points: int = 200
    eps: float = 0.05
    steps: int = 20
    step_size: float | None = None
    random_start: bool = True

    name = "add"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_points < 1 or self.eps < 0 or self.steps < 0:
            raise ValueError(
                f"need num_points >= 1, eps >= 0, steps >= 0; got {self.num_points}, {self.eps}, {self.steps}"
            )

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / max(self.steps, 1)

    def perturb(self, classifier, points, labels, generator) -> torch.Tensor:
        if self.num_points > points.shape[1]:
            raise ValueError(f"cannot add {self.num_points} copies of a cloud of {points.shape[1]} points")
        sources = gather_points(points, farthest_point_sample(points, self.num_points))  # (B, n, C)
        base = sources[..., :3].float()
        delta = torch.zeros_like(base)
        if self.random_start:
            delta = (2 * _uniform(base.shape, base, generator) - 1) * self.eps

        def cloud(delta: torch.Tensor) -> torch.Tensor:
            return torch.cat([points, _with_xyz(sources, base + delta)], dim=1)

        for _ in range(self.steps):
            grad = self.gradient(classifier, cloud(delta), labels, generator)[:, points.shape[1] :]
            delta = (delta + self.alpha * grad.sign()).clamp(-self.eps, self.eps)
        return cloud(delta)


ATTACKS: dict[str, type[PointCloudAttack]] = {
    cls.name: cls for cls in (PGDLinf, PGDL2, SaliencyDrop, PointAdd)
}


def default_attacks(
    num_points: int = 1024, eot_samples: int = 1, seed: int | None = 0, names: list[str] | None = None
) -> dict[str, PointCloudAttack]:
    """The design's attacks (section 8) for clouds of `num_points` points, keyed by name.

    The design's budgets are for 1024 points; for N points the budgets that grow with N are scaled so that the
    per-point effort is the same: the L2 radius by sqrt(N / 1024) (same root-mean-square move per point), the
    points dropped and added by N / 1024 (the same ~20% of the cloud). PGD-Linf is per coordinate: unchanged.
    """
    scale = num_points / 1024
    common = dict(eot_samples=eot_samples, seed=seed)
    attacks = {
        "pgd_linf": PGDLinf(eps=0.05, steps=20, **common),
        "pgd_l2": PGDL2(eps=1.25 * math.sqrt(scale), steps=20, **common),
        "drop": SaliencyDrop(num_points=max(1, round(200 * scale)), **common),
        "add": PointAdd(num_points=max(1, round(200 * scale)), **common),
    }
    if names is None:
        return attacks
    unknown = [n for n in names if n not in attacks]
    if unknown:
        raise ValueError(f"unknown attack(s) {unknown}; choose from {sorted(attacks)}")
    return {n: attacks[n] for n in names}


# ----------------------------------------------------------------------------------------------------------------------
# Defenses (input purification), applied by `ZeroShotClassifier(defense=...)` before the model
# ----------------------------------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class SRSDefense:
    """Simple random sampling: drop `num_drop` points chosen uniformly at random, per cloud and call.

    Returns `(B, N - num_drop, C)`, the survivors in their original order: the count is fixed, so batches stay
    rectangular. The draw comes from `generator` (the classifier's), so EOT averages over it. Default 500 of 1024
    points (DUP-Net's setting).
    """

    num_drop: int = 500

    stochastic = True

    def __post_init__(self) -> None:
        if self.num_drop < 0:
            raise ValueError(f"num_drop must be >= 0; got {self.num_drop}")

    def __call__(self, points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_points(points, "points")
        batch_size, num_points, _ = points.shape
        if not 0 <= self.num_drop < num_points:
            raise ValueError(f"SRS cannot drop {self.num_drop} of {num_points} points")
        keep = _uniform((batch_size, num_points), points, generator).argsort(dim=1)[:, : num_points - self.num_drop]
        return gather_points(points, keep.sort(dim=1).values)


@dataclass(kw_only=True)
class SORDefense:
    """Statistical outlier removal (Zhou et al., DUP-Net, 2019): a point whose mean distance to its `k` nearest
    neighbours exceeds `mean + alpha * std` of that statistic over its cloud is removed.

    The number removed varies from cloud to cloud, so each cloud is brought back to its input size N by repeating
    its kept points in order (kept points, then kept points again from the first, ...): duplicates add no new
    surface, and the result is deterministic. Defaults k = 2, alpha = 1.1 (DUP-Net's). Gradients flow through the
    kept coordinates; the selection itself is a constant.
    """

    k: int = 2
    alpha: float = 1.1

    stochastic = False

    def __post_init__(self) -> None:
        if self.k < 1 or self.alpha < 0:
            raise ValueError(f"need k >= 1 and alpha >= 0; got k={self.k}, alpha={self.alpha}")

    def inlier_mask(self, points: torch.Tensor) -> torch.Tensor:
        """`(B, N)` bool: the points SOR keeps."""
        with torch.no_grad():
            sq_dist, _ = knn(points.detach(), points.detach(), self.k + 1)  # nearest is the point itself
            mean_dist = sq_dist[..., 1:].clamp_min(0).sqrt().mean(-1)  # (B, N)
            threshold = mean_dist.mean(1, keepdim=True) + self.alpha * mean_dist.std(1, keepdim=True)
            return mean_dist <= threshold

    def __call__(self, points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_points(points, "points", min_points=self.k + 1)
        num_points = points.shape[1]
        mask = self.inlier_mask(points)
        # kept indices first (stable order), then cycle over them to refill the cloud to N points
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # (B, N)
        kept = mask.sum(1, keepdim=True)  # (B, 1), >= 1: the closest-packed point is always an inlier
        slots = torch.arange(num_points, device=points.device)[None] % kept
        return gather_points(points, order.gather(1, slots))


DEFENSES: dict[str, type] = {"srs": SRSDefense, "sor": SORDefense}


__all__ = [
    "ZeroShotClassifier",
    "attack_loss",
    "eot_gradient",
    "PointCloudAttack",
    "PGDLinf",
    "PGDL2",
    "SaliencyDrop",
    "PointAdd",
    "ATTACKS",
    "default_attacks",
    "SRSDefense",
    "SORDefense",
    "DEFENSES",
]
