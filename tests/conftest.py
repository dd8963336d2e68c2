"""What the tests share: a tiny-model tester in the manner of transformers' ModelTester, seeded generators, a tiny
CLIP teacher, a numpy FPS reference, toy shapes with a quickly trained contrastive baseline, and the repository's
scripts and drivers loaded as modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import CLIPConfig, CLIPModel

from dual_denoising import DualDenoisingConfig, DualDenoisingModel


def numpy_fps(cloud: np.ndarray, num_samples: int, start: int = 0) -> np.ndarray:
    cloud = cloud.astype(np.float64)
    chosen = [start]
    min_dist = np.full(len(cloud), np.inf)
    for _ in range(num_samples - 1):
        min_dist = np.minimum(min_dist, ((cloud - cloud[chosen[-1]]) ** 2).sum(1))
        chosen.append(int(min_dist.argmax()))
    return np.array(chosen)


class DualDenoisingModelTester:
    """Builds tiny configs and inputs, in the manner of transformers' ModelTester."""

    batch_size = 3
    num_points = 128
    embed_dim = 64

    def get_config(self, **overrides) -> DualDenoisingConfig:
        kwargs = dict(
            point_config=dict(
                num_points=self.num_points, num_groups=16, group_size=8, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=2, num_decoder_layers=1, patch_embed_sizes=[16, 32, 64], position_embed_size=16,
                drop_path_rate=0.0,
            ),
            denoiser_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_feature_tokens=4),
            embed_dim=self.embed_dim,
        )
        kwargs.update(overrides)
        return DualDenoisingConfig(**kwargs)

    def get_inputs(self, seed: int = 0) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        points = torch.rand(self.batch_size, self.num_points, 3, generator=g) * 2 - 1
        return {
            "points": points,
            "image_embeds": torch.randn(self.batch_size, 2, self.embed_dim, generator=g),
            "text_embeds": torch.randn(self.batch_size, 3, self.embed_dim, generator=g),
        }


tester = DualDenoisingModelTester()


def load_repo_file(relative_path: str):
    """A script, driver or example of the repository (not part of the package), loaded as a module."""
    path = Path(__file__).resolve().parents[1] / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_teacher(words: list[str], projection_dim: int = 64, vocab_size: int = 300):
    """A tiny CLIP teacher whose text tower agrees with a BPE tokenizer trained on `a 3d model of a WORD.` captions:
    `(CLIPModel, tokenizer)`, seeded."""
    from dual_denoising.teacher import train_caption_tokenizer

    tokenizer = train_caption_tokenizer([f"a 3d model of a {w}." for w in words] * 4, vocab_size=vocab_size,
                                        model_max_length=16)
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=16, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=16,
                  patch_size=8)
    torch.manual_seed(0)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)), tokenizer


def tiny_clip(tmp_path, projection_dim: int = 64) -> str:
    config = CLIPConfig(
        text_config=dict(vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=projection_dim,
    )
    torch.manual_seed(0)
    path = tmp_path / "teacher"
    CLIPModel(config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread runs these tests ~20x faster than two threads
    contending for busy cores (OpenMP spin-waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Toy shapes and a contrastive baseline trained on them in seconds

CLASSES = ("sphere", "cube", "cylinder")


def shape_surface(kind: str, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """Points on a sphere, a cube or a capped cylinder (radius 0.5, height 2) surface, stretched by 0.9-1 per axis,
    turned about z, and normalised to the unit sphere."""
    n = num_points
    if kind == "sphere":
        p = rng.normal(size=(n, 3))
        p /= np.linalg.norm(p, axis=1, keepdims=True)
    elif kind == "cube":
        p = rng.uniform(-1, 1, (n, 3))
        p[np.arange(n), rng.integers(0, 3, n)] = rng.choice([-1.0, 1.0], n)
    elif kind == "cylinder":
        theta, z = rng.uniform(0, 2 * np.pi, n), rng.uniform(-1, 1, n)
        cap = rng.random(n) < 0.25
        r = 0.5 * np.where(cap, np.sqrt(rng.random(n)), 1.0)
        z = np.where(cap, rng.choice([-1.0, 1.0], n), z)
        p = np.stack([r * np.cos(theta), r * np.sin(theta), z], axis=1)
    else:
        raise ValueError(kind)
    p = p * rng.uniform(0.9, 1.0, 3)
    angle = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(angle), np.sin(angle)
    p = p @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).T
    p -= p.mean(0)
    return (p / np.linalg.norm(p, axis=1).max()).astype(np.float32)


def make_shapes(per_class: int, seed: int, num_points: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    points = [shape_surface(kind, num_points, rng) for kind in CLASSES for _ in range(per_class)]
    labels = [c for c in range(len(CLASSES)) for _ in range(per_class)]
    return torch.from_numpy(np.stack(points)), torch.tensor(labels)


def train_baseline(class_embeds: torch.Tensor, steps: int = 40, seed: int = 0) -> DualDenoisingModel:
    """The contrastive baseline, aligned for a few seconds to per-class "teacher" embeddings on fresh shapes."""
    torch.manual_seed(seed)
    model = DualDenoisingModel(tester.get_config(objective="contrastive"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        points, labels = make_shapes(8, 100 + step)
        loss = model(points, image_embeds=class_embeds[labels], text_embeds=class_embeds[labels]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # BatchNorm's running variance starts at 1 while the patch features' is ~1e-4, and momentum 0.1 needs hundreds
    # of steps to get there: after this short run, re-estimate the statistics on training shapes (cumulative mean).
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        model.train().encode(make_shapes(16, 0)[0])
    return model.eval()
