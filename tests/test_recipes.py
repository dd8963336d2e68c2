"""The recipe stages (recipes.py) and the embedded default model they produce."""

from __future__ import annotations

import json

import numpy as np
import torch

from dual_denoising.cli import main as cli_main
from dual_denoising.data import load_triples, load_triples_metadata
from dual_denoising.pipeline_dual_denoising import EMBEDDED_MODEL
from dual_denoising.point_ops import farthest_point_sample
from dual_denoising.recipes import embedded_model_classes, ensure_resampled
from dual_denoising.synthshapes import save_synthshapes


def test_ensure_resampled_reduces_by_fps_once(tmp_path, capsys):
    source, out = tmp_path / "data", tmp_path / "data-64"
    save_synthshapes(source, 2, 1, seed=0, classes=["chair", "cup"], num_points=200, progress=False)
    ensure_resampled(source, out, num_points=64)
    original, reduced = load_triples(source), load_triples(out)
    assert "images" not in reduced["train"].column_names
    for split in ("train", "test"):
        assert len(reduced[split]) == len(original[split])
        for row, full in zip(reduced[split], original[split]):
            cloud = torch.tensor(np.asarray(full["points"], dtype=np.float32))[None]
            expected = cloud[0, farthest_point_sample(cloud, 64)[0]]
            np.testing.assert_array_equal(np.asarray(row["points"], dtype=np.float32), expected.numpy())
            assert row["label"] == full["label"] and row["captions"] == full["captions"]
    meta = load_triples_metadata(out)
    assert meta["num_points"] == 64 and meta["classes"] == load_triples_metadata(source)["classes"]
    ensure_resampled(source, out, num_points=64)
    assert "reusing" in capsys.readouterr().out


def test_embedded_model_is_shipped_and_lists_its_classes(capsys):
    meta = json.loads((EMBEDDED_MODEL / "metadata.json").read_text())
    assert len(meta["classes"]) >= 20 and embedded_model_classes() == meta["classes"]
    size = sum(p.stat().st_size for p in EMBEDDED_MODEL.iterdir())
    assert size < 20e6, f"the embedded model is {size / 1e6:.1f} MB; the limit is 20 MB"
    assert cli_main(["classes"]) == 0
    assert capsys.readouterr().out.split() == meta["classes"]


def test_pipeline_without_a_model_uses_the_embedded_default():
    from transformers import pipeline

    from dual_denoising.synthshapes import generate_shape

    classifier = pipeline("zero-shot-3d-classification")
    classes = embedded_model_classes()
    for name in ("airplane", "guitar", "cone"):  # distinctive classes, shapes from a seed the model never saw
        cloud = generate_shape(name, index=0, seed=4242, num_points=2048, views=1)["points"]
        ranking = classifier(np.asarray(cloud), candidate_labels=classes)
        assert abs(sum(r["score"] for r in ranking) - 1) < 1e-4
        assert ranking[0]["label"] == name, ranking[:3]
