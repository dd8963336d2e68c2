"""The accelerator path: every `gpu` test runs the package on `DD_TEST_DEVICE` (default `cuda`) and compares it with
the CPU under the same seed. Skipped without CUDA; `benchmarks/gpu_check.py` runs them on a GPU, and in its CPU
smoke mode (`DD_TEST_DEVICE=cpu`, in CI) on the CPU against itself, so that the tests cannot rot.

Noise is drawn on the generator's device (`scheduling_dual_denoising.randn_tensor`), so a CPU generator gives the same draws
whatever the model's device, and float32 results agree up to the kernels' rounding (TF32 is switched off here).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from transformers import pipeline

import dual_denoising  # noqa: F401  (registers the task)
from dual_denoising import DualDenoisingModel
from dual_denoising.evaluation.attacks import PGDL2, PGDLinf, PointAdd, SaliencyDrop, ZeroShotClassifier
from dual_denoising.pipeline_dual_denoising import TASK, ZeroShot3DClassificationPipeline

from .conftest import seeded, tester, tiny_teacher

DEVICE = os.environ.get("DD_TEST_DEVICE", "cuda")
TOLERANCE = 2e-4  # float32, unit-norm embeddings: the largest absolute difference allowed per coordinate
LABELS = ["chair", "table", "lamp", "cup"]
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="no CUDA device"),
]
INFERENCE_OPTIONS = {
    "dual_denoising": [{}, {"num_noise_samples": 4}, {"num_inference_steps": 5},
                       {"num_noise_samples": 4, "num_inference_steps": 5}, {"inference_point_noise_level": 100},
                       {"purification_rounds": 1}, {"purification_rounds": 1, "purification_keep_input": True}],
    "contrastive": [{}, {"num_noise_samples": 4, "inference_point_noise_level": 100}],
}


@pytest.fixture(autouse=True, scope="module")
def exact_float32():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def tiny_model(objective: str) -> DualDenoisingModel:
    torch.manual_seed(0)
    return DualDenoisingModel(tester.get_config(objective=objective)).eval()


def clouds(batch: int = 4) -> torch.Tensor:
    return torch.rand(batch, tester.num_points, 3, generator=seeded(1)) * 2 - 1


@pytest.mark.parametrize("objective, options", [(o, k) for o, ks in INFERENCE_OPTIONS.items() for k in ks])
def test_point_features_agree_with_the_cpu(objective, options):
    model, points = tiny_model(objective), clouds()
    with torch.no_grad():
        expected = model.get_point_features(points, generator=seeded(2), **options)
        got = model.to(DEVICE).get_point_features(points.to(DEVICE), generator=seeded(2), **options)
    assert got.device.type == torch.device(DEVICE).type
    torch.testing.assert_close(got.cpu(), expected, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("objective", ["dual_denoising", "contrastive"])
def test_a_training_step_gives_the_cpu_loss_and_gradients(objective):
    inputs = tester.get_inputs()
    losses, grads = [], []
    for device in ("cpu", DEVICE):
        model = tiny_model(objective).train().to(device)
        out = model(**{k: v.to(device) for k, v in inputs.items()}, generator=seeded(3))
        out.loss.backward()
        losses.append(out.loss.detach().cpu())
        grads.append(torch.cat([p.grad.flatten().cpu() for p in model.parameters() if p.grad is not None]))
    assert torch.isfinite(losses[1])
    torch.testing.assert_close(losses[1], losses[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("objective", ["dual_denoising", "contrastive"])
def test_bf16_autocast_trains(objective):
    model = tiny_model(objective).train().to(DEVICE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs = {k: v.to(DEVICE) for k, v in tester.get_inputs().items()}
    losses = []
    for step in range(5):
        with torch.autocast(device_type=torch.device(DEVICE).type, dtype=torch.bfloat16):
            loss = model(**inputs, generator=seeded(step)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(np.isfinite(losses)), losses
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast: the weights stay float32


@pytest.mark.parametrize("attack", [PGDLinf(eps=0.05, steps=3, eot_samples=2), PGDL2(eps=0.5, steps=3, eot_samples=2),
                                    SaliencyDrop(num_points=16, eot_samples=2), PointAdd(num_points=16, eot_samples=2)],
                         ids=["pgd_linf", "pgd_l2", "drop", "add"])
def test_attacks_run_on_the_device(attack):
    model = tiny_model("dual_denoising").to(DEVICE)
    class_embeds = torch.randn(len(LABELS), tester.embed_dim, generator=seeded(4))
    classifier = ZeroShotClassifier(model, class_embeds.to(DEVICE))
    points, labels = clouds().to(DEVICE), torch.arange(4, device=DEVICE) % len(LABELS)
    adversarial = attack(classifier, points, labels, generator=seeded(5))
    assert adversarial.device.type == torch.device(DEVICE).type and torch.isfinite(adversarial).all()
    assert torch.isfinite(classifier(adversarial, generator=seeded(6))).all()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny self-contained folder (text tower + tokenizer), saved through the pipeline."""
    teacher, tokenizer = tiny_teacher(LABELS, projection_dim=tester.embed_dim, vocab_size=200)
    model = DualDenoisingModel.from_teacher(teacher, tester.get_config()).eval()
    path = tmp_path_factory.mktemp("gpu") / "model"
    ZeroShot3DClassificationPipeline(model=model, tokenizer=tokenizer).save_pretrained(path)
    return path


def test_the_pipeline_on_the_device_ranks_as_on_the_cpu(saved_model):
    cloud = np.random.default_rng(0).uniform(-1, 1, (300, 3)).astype(np.float32)
    answers = []
    for device in ("cpu", DEVICE):
        classifier = pipeline(TASK, model=str(saved_model), device=device)
        answers.append(classifier(cloud, candidate_labels=LABELS, up_axis="y"))
    assert [a["label"] for a in answers[1]] == [a["label"] for a in answers[0]]
    np.testing.assert_allclose([a["score"] for a in answers[1]], [a["score"] for a in answers[0]], atol=1e-4)


def test_save_and_load_from_a_device_model(tmp_path):
    model = tiny_model("dual_denoising").to(DEVICE)
    model.save_pretrained(tmp_path / "saved")
    loaded = DualDenoisingModel.from_pretrained(tmp_path / "saved").to(DEVICE).eval()
    points = clouds().to(DEVICE)
    with torch.no_grad():
        torch.testing.assert_close(loaded.get_point_features(points, generator=seeded(7)),
                                   model.get_point_features(points, generator=seeded(7)), atol=1e-6, rtol=0)
    for (name, buffer), (_, other) in zip(model.named_buffers(), loaded.named_buffers()):
        torch.testing.assert_close(other, buffer, msg=name)
