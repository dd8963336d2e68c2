"""Attacks and defenses (docs/design.md section 8).

Toy classifiers whose gradients are known in closed form check that each attack finds the analytic worst case,
respects its budget exactly, averages EOT draws correctly and never touches the caller's tensors; a contrastive
baseline trained here for a few seconds checks that PGD-Linf at the design's epsilon really breaks a working model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dual_denoising import DualDenoisingModel
from dual_denoising.evaluation.attacks import (
    PGDL2,
    PGDLinf,
    PointAdd,
    SaliencyDrop,
    SORDefense,
    SRSDefense,
    ZeroShotClassifier,
    attack_loss,
    default_attacks,
    eot_gradient,
)

from .conftest import CLASSES, make_shapes, seeded, tester, train_baseline

# tiny tensors on a shared 2-core machine: one intra-op thread (conftest.one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------------------------------------
# Toy classifiers with closed-form gradients
# ----------------------------------------------------------------------------------------------------------------------
class LinearToy:
    """logits = W . flatten(points); with `sigma > 0` every call multiplies W elementwise by 1 + sigma * N(0, 1)
    drawn from the generator (so E[W'] = W: the expected gradient is known in closed form)."""

    def __init__(self, weight: torch.Tensor, sigma: float = 0.0):
        self.weight, self.sigma, self.calls = weight, sigma, 0

    @property
    def stochastic(self) -> bool:
        return self.sigma > 0

    def __call__(self, points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.calls += 1
        weight = self.weight
        if self.sigma > 0:
            weight = weight * (1 + self.sigma * torch.randn(weight.shape, generator=generator))
        return points.flatten(1) @ weight.T


class MeanPoolToy:
    """logits = mean over points of (points @ A): every point gets the same gradient, whatever the count."""

    stochastic = False

    def __init__(self, weight: torch.Tensor):
        self.weight = weight  # (3, C)

    def __call__(self, points, generator=None):
        return (points @ self.weight).mean(dim=1)


class RadialToy:
    """Two classes: logit_0 = scale * (sum of squared norms - offset), logit_1 = 0. The loss of label 0 grows when
    points move inward, the more so the farther out they are: saliency ranks points by their radius."""

    stochastic = False

    def __init__(self, offset: torch.Tensor, scale: float = 0.01):
        self.offset, self.scale = offset, scale

    def __call__(self, points, generator=None):
        logit = self.scale * (points.pow(2).sum(dim=(1, 2)) - self.offset)
        return torch.stack([logit, torch.zeros_like(logit)], dim=1)


def linear_problem(num_clouds: int = 4, num_points: int = 32, seed: int = 0):
    g = seeded(seed)
    points = torch.rand(num_clouds, num_points, 3, generator=g) * 2 - 1
    weight = 0.01 * torch.randn(2, num_points * 3, generator=g)  # small: the softmax never saturates
    labels = torch.tensor([0, 1] * (num_clouds // 2))
    return points, labels, weight


def worst_direction(weight: torch.Tensor, labels: torch.Tensor, num_points: int) -> torch.Tensor:
    """`(B, N, 3)`: w_other - w_true, the direction that raises the cross-entropy fastest for a 2-class linear model."""
    return (weight[1 - labels] - weight[labels]).reshape(-1, num_points, 3)


# ----------------------------------------------------------------------------------------------------------------------
# PGD reaches the analytic worst case and respects its budget
# ----------------------------------------------------------------------------------------------------------------------
def test_pgd_linf_reaches_the_analytic_worst_case():
    points, labels, weight = linear_problem()
    eps = 0.05
    adversarial = PGDLinf(eps=eps, steps=20)(LinearToy(weight), points, labels)
    expected = -eps * torch.sign(weight[labels] - weight[1 - labels]).reshape(points.shape)
    torch.testing.assert_close(adversarial - points, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_l2_reaches_the_analytic_worst_case(random_start):
    points, labels, weight = linear_problem()
    eps = 0.5
    attack = PGDL2(eps=eps, steps=60, step_size=eps / 4, random_start=random_start)
    delta = attack(LinearToy(weight), points, labels) - points
    direction = worst_direction(weight, labels, points.shape[1])
    expected = eps * direction / direction.flatten(1).norm(dim=1)[:, None, None]
    torch.testing.assert_close(delta, expected, atol=1e-4, rtol=0)


class MLPToy:
    """A nonlinear classifier (shared per-point MLP, max-pool) to test the budget where gradients change."""

    stochastic = False

    def __init__(self, seed: int = 0):
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))

    def __call__(self, points, generator=None):
        return self.net(points).amax(dim=1)


def test_budgets_are_respected_exactly():
    points = torch.rand(3, 40, 3, generator=seeded(1)) * 2 - 1
    labels = torch.tensor([0, 1, 2])
    model = MLPToy()
    # a step larger than the ball forces the projection to act on every step
    linf = PGDLinf(eps=0.03, steps=5, step_size=0.1)(model, points, labels)
    assert (linf - points).abs().max() <= 0.03 + 1e-6
    l2 = PGDL2(eps=0.2, steps=5, step_size=1.0)(model, points, labels)
    assert (l2 - points).flatten(1).norm(dim=1).max() <= 0.2 + 1e-5
    added = PointAdd(num_points=7, eps=0.02, steps=5, step_size=0.1)(model, points, labels)
    assert added.shape == (3, 47, 3)
    torch.testing.assert_close(added[:, :40], points, rtol=0, atol=0)  # the cloud itself is untouched
    # every added point is within eps (per coordinate) of a point of the cloud
    distance = (added[:, 40:, None] - points[:, None]).abs().amax(-1).amin(-1)
    assert distance.max() <= 0.02 + 1e-6


def test_point_add_moves_copies_to_the_worst_case():
    points = torch.rand(2, 30, 3, generator=seeded(2)) * 2 - 1
    weight = torch.randn(3, 2, generator=seeded(3))
    labels = torch.tensor([0, 1])
    adversarial = PointAdd(num_points=5, eps=0.04, steps=20)(MeanPoolToy(weight), points, labels)
    from dual_denoising.point_ops import farthest_point_sample, gather_points

    sources = gather_points(points, farthest_point_sample(points, 5))
    sign = torch.sign(weight[:, 1 - labels] - weight[:, labels]).T[:, None, :]  # (B, 1, 3)
    torch.testing.assert_close(adversarial[:, 30:] - sources, 0.04 * sign.expand(-1, 5, -1), atol=1e-6, rtol=0)


def test_saliency_drop_removes_the_most_salient_points():
    # a symmetric cloud plus the origin: the coordinate-wise median is exactly 0, so saliency ranks by radius
    half = torch.randn(1, 20, 3, generator=seeded(4))
    points = torch.cat([half, -half, torch.zeros(1, 1, 3)], dim=1)  # (1, 41, 3)
    toy = RadialToy(offset=points.pow(2).sum(dim=(1, 2)))
    radius = points[0].norm(dim=-1)
    expected_keep = radius.argsort()[: 41 - 10].sort().values
    for rounds in (1, 5):  # 5 rounds of 2: each round removes one symmetric pair, the cloud stays symmetric
        adversarial = SaliencyDrop(num_points=10, num_rounds=rounds)(toy, points, torch.tensor([0]))
        assert adversarial.shape == (1, 31, 3)
        torch.testing.assert_close(adversarial[0], points[0, expected_keep], rtol=0, atol=0)
    assert attack_loss(toy(adversarial), torch.tensor([0])) > attack_loss(toy(points), torch.tensor([0]))


# ----------------------------------------------------------------------------------------------------------------------
# EOT
# ----------------------------------------------------------------------------------------------------------------------
def test_eot_gradient_matches_the_expected_gradient():
    """At points = 0 every draw gives logits 0, so p = (1/2, 1/2) and the cross-entropy gradient is
    (w'_other - w'_true) / 2, linear in the noise: its expectation is (w_other - w_true) / 2."""
    num_points = 16
    weight = torch.randn(2, num_points * 3, generator=seeded(5))
    toy = LinearToy(weight, sigma=1.0)
    points, labels = torch.zeros(4, num_points, 3), torch.tensor([0, 1, 0, 1])
    expected = worst_direction(weight, labels, num_points) / 2
    errors = {}
    for draws in (1, 64):
        grad = eot_gradient(toy, points, labels, eot_samples=draws, generator=seeded(6))
        errors[draws] = (grad - expected).norm().item()
    assert errors[64] < 0.25 * errors[1], errors  # ~1/8 expected: the error shrinks as 1/sqrt(R)


def test_eot_draws_fresh_noise_only_for_stochastic_classifiers():
    points, labels, weight = linear_problem()
    stochastic, deterministic = LinearToy(weight, sigma=0.5), LinearToy(weight)
    PGDLinf(steps=3, eot_samples=5)(stochastic, points, labels)
    PGDLinf(steps=3, eot_samples=5)(deterministic, points, labels)
    assert stochastic.calls == 15 and deterministic.calls == 3


def test_attacks_are_reproducible_and_seeded():
    points, labels, weight = linear_problem()
    toy = LinearToy(weight, sigma=0.5)
    a = PGDL2(eps=0.3, steps=3, eot_samples=2, seed=1)(toy, points, labels)
    b = PGDL2(eps=0.3, steps=3, eot_samples=2, seed=1)(toy, points, labels)
    c = PGDL2(eps=0.3, steps=3, eot_samples=2, seed=2)(toy, points, labels)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "attack",
    [PGDLinf(steps=2), PGDL2(steps=2), SaliencyDrop(num_points=4, num_rounds=2), PointAdd(num_points=4, steps=2)],
    ids=lambda a: a.name,
)
def test_caller_tensors_are_unchanged(attack):
    points = (torch.rand(2, 24, 3, generator=seeded(7)) * 2 - 1).requires_grad_(False)
    labels = torch.tensor([1, 3])
    points_copy, labels_copy = points.clone(), labels.clone()
    adversarial = attack(MLPToy(), points, labels)
    assert torch.equal(points, points_copy) and torch.equal(labels, labels_copy)
    assert adversarial.data_ptr() != points.data_ptr() and not adversarial.requires_grad


def test_extra_channels_ride_along():
    points = torch.cat([torch.rand(2, 24, 3) * 2 - 1, torch.rand(2, 24, 3)], dim=-1)  # xyz + RGB

    def classifier(x, generator=None):
        return MLPToy()(x[..., :3]) + x[..., 3:].sum(1)[:, :1]

    adversarial = PGDLinf(eps=0.05, steps=2)(classifier, points, torch.tensor([0, 1]))
    assert torch.equal(adversarial[..., 3:], points[..., 3:])
    assert (adversarial[..., :3] - points[..., :3]).abs().max() > 0


def test_margin_loss_and_bad_arguments():
    logits = torch.tensor([[3.0, 1.0, 2.0]])
    assert attack_loss(logits, torch.tensor([0]), "margin").item() == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        PGDLinf(loss="hinge")
    with pytest.raises(ValueError, match="eot_samples"):
        PGDL2(eot_samples=0)
    with pytest.raises(ValueError, match="labels must be"):
        PGDLinf()(MLPToy(), torch.rand(2, 8, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown attack"):
        default_attacks(names=["fgsm"])


def test_default_attacks_scale_with_the_point_count():
    full, small = default_attacks(1024), default_attacks(256)
    assert (full["pgd_linf"].eps, full["pgd_l2"].eps, full["drop"].num_points, full["add"].num_points) == (
        0.05, 1.25, 200, 200)
    assert small["pgd_l2"].eps == pytest.approx(0.625) and small["drop"].num_points == small["add"].num_points == 50
    assert small["pgd_linf"].eps == 0.05 and full["pgd_linf"].alpha == pytest.approx(0.05 / 8)


# ----------------------------------------------------------------------------------------------------------------------
# Defenses
# ----------------------------------------------------------------------------------------------------------------------
def fibonacci_sphere(num_points: int) -> torch.Tensor:
    i = torch.arange(num_points, dtype=torch.float32) + 0.5
    phi, theta = torch.acos(1 - 2 * i / num_points), np.pi * (1 + 5**0.5) * i
    return torch.stack([phi.sin() * theta.cos(), phi.sin() * theta.sin(), phi.cos()], dim=-1)


def test_sor_removes_outliers_and_keeps_the_count():
    clean = fibonacci_sphere(100)
    outliers = torch.tensor([[3.0, 0.0, 0.0], [0.0, -4.0, 0.0], [2.0, 2.0, 2.0]])
    points = torch.stack([torch.cat([clean, outliers]), torch.cat([outliers, clean])]).requires_grad_(True)
    out = SORDefense(k=2, alpha=1.1)(points)
    assert out.shape == (2, 103, 3)
    assert (out.norm(dim=-1) - 1).abs().max() < 1e-5  # only sphere points survive (some twice, to refill)
    out.sum().backward()  # gradients reach the kept coordinates, not the removed ones
    assert points.grad[0, :100].abs().sum() > 0 and points.grad[0, 100:].abs().sum() == 0


def test_srs_drops_a_fixed_number_at_random():
    points = torch.rand(2, 50, 3)
    srs = SRSDefense(num_drop=20)
    a, b, c = srs(points, seeded(0)), srs(points, seeded(0)), srs(points, seeded(1))
    assert a.shape == (2, 30, 3) and torch.equal(a, b) and not torch.equal(a, c)
    assert all(any(torch.equal(p, q) for q in points[0]) for p in a[0])  # a subset of the input


# ----------------------------------------------------------------------------------------------------------------------
# ZeroShotClassifier on the real model
# ----------------------------------------------------------------------------------------------------------------------
def test_zero_shot_classifier_matches_the_model():
    torch.manual_seed(0)
    model = DualDenoisingModel(tester.get_config()).eval()
    class_embeds = torch.randn(4, tester.embed_dim)
    points = tester.get_inputs()["points"]
    classifier = ZeroShotClassifier(model, class_embeds, num_noise_samples=2, num_inference_steps=2)
    assert classifier.stochastic
    expected = model.zero_shot_logits(points, class_embeds, num_noise_samples=2, num_inference_steps=2,
                                      generator=seeded(3))
    torch.testing.assert_close(classifier(points, generator=seeded(3)), expected)
    # the whole sampling chain is differentiated: a gradient reaches the points
    grad = eot_gradient(classifier, points, torch.tensor([0, 1, 2]), eot_samples=2, generator=seeded(4))
    assert grad.shape == points.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0

    baseline = DualDenoisingModel(tester.get_config(objective="contrastive")).eval()
    assert not ZeroShotClassifier(baseline, class_embeds).stochastic
    assert ZeroShotClassifier(baseline, class_embeds, defense=SRSDefense(num_drop=8)).stochastic
    assert not any(p.grad is not None for p in model.parameters())  # attacks leave parameter gradients alone


# ----------------------------------------------------------------------------------------------------------------------
# PGD breaks a working contrastive baseline
# ----------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_baseline():
    class_embeds = F.normalize(torch.randn(len(CLASSES), tester.embed_dim, generator=seeded(0)), dim=-1)
    return train_baseline(class_embeds), class_embeds


def test_pgd_linf_breaks_the_trained_baseline(trained_baseline):
    model, class_embeds = trained_baseline
    classifier = ZeroShotClassifier(model, class_embeds)
    points, labels = make_shapes(10, 1)
    with torch.no_grad():
        clean = (classifier(points).argmax(1) == labels).float().mean().item()
    adversarial = PGDLinf(eps=0.05, steps=20)(classifier, points, labels)
    assert (adversarial - points).abs().max() <= 0.05 + 1e-6
    with torch.no_grad():
        robust = (classifier(adversarial).argmax(1) == labels).float().mean().item()
    assert clean >= 0.8, clean
    assert robust <= clean / 2, (clean, robust)
